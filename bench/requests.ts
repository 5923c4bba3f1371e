/**
 * @module Requests to a subject in this process: a client with a cookie jar, the check that a subject really
 * keeps its counter, and timed batches of reads or writes.
 */

import { CookieJar } from '../test/support/jar.ts'
import type { Subject } from './subjects.ts'

/** Production-like: https, so no library takes its plain-http development path. */
export const ORIGIN = 'https://app.example'

export type RequestKind = 'read' | 'write'

/** A browser of one subject: its cookies go with every request, and every Set-Cookie updates them. */
export class Client {
  readonly jar = new CookieJar()

  constructor(readonly subject: Subject) {}

  request(method: 'GET' | 'POST', path: string): Request {
    const headers: Record<string, string> = {}
    if (this.jar.cookies.size > 0) headers.cookie = this.jar.header()
    return new Request(`${ORIGIN}${path}`, { method, headers })
  }

  /** The request of one benchmark step: `GET /count` reads the counter, `POST /count` increments it. */
  step(kind: RequestKind): Request {
    return kind === 'read' ? this.request('GET', '/count') : this.request('POST', '/count')
  }

  /** Sends a request, applies its Set-Cookie, and returns the response (status checked). */
  async send(method: 'GET' | 'POST', path: string): Promise<Response> {
    const response = await this.subject.fetch(this.request(method, path))
    this.jar.update(response)
    if (response.status !== 200) {
      throw new Error(`${this.subject.label}: ${method} ${path} answered ${response.status}`)
    }
    return response
  }

  async text(method: 'GET' | 'POST', path: string): Promise<string> {
    return (await this.send(method, path)).text()
  }

  /** Bytes of the Cookie header this client sends. */
  cookieBytes(): number {
    return new TextEncoder().encode(this.jar.header()).length
  }
}

/**
 * Logs a new client in and checks that the subject really keeps a session: the counter starts at 0, counts up,
 * and reads back. Throws when it does not, so a broken integration never yields figures.
 */
export async function loggedInClient(subject: Subject): Promise<Client> {
  const client = new Client(subject)
  await client.send('POST', '/login')
  if (subject.id === 'baseline') return client
  if (client.jar.cookies.size === 0) throw new Error(`${subject.label}: logging in set no cookie`)
  const steps: [method: 'GET' | 'POST', expected: string][] = [
    ['GET', '0'],
    ['POST', '1'],
    ['POST', '2'],
    ['GET', '2'],
  ]
  for (const [method, expected] of steps) {
    const got = await client.text(method, '/count')
    if (got !== expected) {
      throw new Error(`${subject.label}: ${method} /count answered ${got}, expected ${expected}`)
    }
  }
  return client
}

/**
 * Sends `n` requests of `kind` one after another and returns the mean time per request in ms. Only
 * `fetch` is timed: building each request and reading its Set-Cookie (which a browser does) are not.
 * Each request carries the cookies the previous one left, as a browser would; while they stay the same, the same
 * Request is sent again (and a Set-Cookie identical to the last is not parsed again), so that no subject's timing
 * pays for collecting garbage the client made outside it.
 */
export async function timeBatch(client: Client, kind: RequestKind, n: number): Promise<number> {
  const fetch = client.subject.fetch
  let total = 0
  let cookies = client.jar.header()
  let request = client.step(kind)
  let lastSetCookie: string | null = null
  for (let i = 0; i < n; i++) {
    const start = performance.now()
    const response = await fetch(request)
    total += performance.now() - start
    if (response.status !== 200) {
      throw new Error(`${client.subject.label}: ${kind} answered ${response.status}`)
    }
    // The client's own work, kept small: its garbage is collected during whichever request comes next.
    const setCookie = response.headers.get('set-cookie')
    if (setCookie !== null && setCookie !== lastSetCookie) {
      lastSetCookie = setCookie
      client.jar.update(response)
      const now = client.jar.header()
      if (now !== cookies) {
        cookies = now
        request = client.step(kind)
      }
    }
  }
  return total / n
}
