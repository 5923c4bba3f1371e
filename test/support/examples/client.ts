/** @module A client of the running examples: one cookie jar carried from server to server, as a browser would. */

import { expect } from 'vitest'
import type { RunningExample } from '../examples.ts'
import { CookieJar } from '../jar.ts'

export interface SessionView {
  visits: number
  user: string | null
}

export class Client {
  constructor(readonly jar = new CookieJar()) {}

  /** A client holding a copy of this one's cookies. */
  clone(): Client {
    return new Client(this.jar.clone())
  }

  /** One request to `example`, which must answer as its runtime; Set-Cookie updates the jar. */
  async fetch(example: RunningExample, path: string, init: { method?: string; json?: unknown } = {}) {
    const headers = new Headers()
    if (this.jar.cookies.size > 0) headers.set('cookie', this.jar.header())
    if (init.json !== undefined) headers.set('content-type', 'application/json')
    const response = await fetch(`${example.url}${path}`, {
      method: init.method ?? 'GET',
      headers,
      body: init.json === undefined ? undefined : JSON.stringify(init.json),
      redirect: 'manual',
    })
    this.jar.update(response)
    expect(response.headers.get('x-served-by'), `${path} on ${example.url}`).toBe(example.runtime)
    return response
  }

  /** `GET /api/session` (counts a visit). */
  async session(example: RunningExample): Promise<SessionView> {
    const response = await this.fetch(example, '/api/session')
    expect(response.status).toBe(200)
    return (await response.json()) as SessionView
  }

  /** `GET /`: the HTML page. */
  async page(example: RunningExample): Promise<string> {
    const response = await this.fetch(example, '/')
    expect(response.status).toBe(200)
    return response.text()
  }

  async login(example: RunningExample, user: string): Promise<void> {
    const response = await this.fetch(example, '/api/login', { method: 'POST', json: { user } })
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ user })
  }

  /** `GET /api/sessions`: the logged-in user's devices, this one marked `current`. */
  async devices(example: RunningExample): Promise<Array<{ handle: string; current: boolean }>> {
    const response = await this.fetch(example, '/api/sessions')
    expect(response.status).toBe(200)
    return ((await response.json()) as { sessions: Array<{ handle: string; current: boolean }> }).sessions
  }

  /** `POST /api/sessions/revoke` with `handle`. */
  async revoke(example: RunningExample, handle: string): Promise<unknown> {
    const response = await this.fetch(example, '/api/sessions/revoke', { method: 'POST', json: { handle } })
    expect(response.status).toBe(200)
    return response.json()
  }

  async logout(example: RunningExample): Promise<void> {
    const response = await this.fetch(example, '/api/logout', { method: 'POST', json: {} })
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ user: null })
  }
}

/**
 * What a Node example on a shared store must show: two visits in one process, a login, the session found again
 * (login included) by a second process, then a logout. `stored()` counts the sessions the store holds: one
 * throughout (a login moves the record to the new id, it does not copy it), none after the logout.
 */
export async function expectSessionAcrossProcesses(
  start: () => Promise<RunningExample>,
  storeName: string,
  stored: () => Promise<number>,
): Promise<void> {
  const client = new Client()
  const first = await start()
  expect(await client.page(first)).toContain(`with the ${storeName} store.`)
  expect(await client.session(first)).toEqual({ visits: 2, user: null })
  expect(await stored()).toBe(1)
  await client.login(first, 'ada')
  await first.stop()

  const second = await start()
  expect(await client.session(second)).toEqual({ visits: 3, user: 'ada' })
  expect(await stored()).toBe(1)
  await client.logout(second)
  expect(await stored()).toBe(0)
}
