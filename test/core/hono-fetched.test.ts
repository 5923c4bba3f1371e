/**
 * @module The Hono middleware with a handler that returns a fetched `Response` (immutable headers), from a real
 * HTTP server on 127.0.0.1: the session cookie and the fetched response's own cookies all reach the client, each
 * once. Node only (core.workerd.test.ts re-runs hono.test.ts, which covers the other kinds of response).
 */
import { createServer, type Server } from 'node:http'
import { createSessions } from 'edge-session'
import { type SessionEnv, session } from 'edge-session/hono'
import { memoryStore } from 'edge-session/stores/memory'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CookieJar } from '../support/jar.ts'

const SECRET = 'hono-fetched-test-secret-0123456789abcdef'
const ORIGIN = 'https://app.example'

interface Data {
  userId?: string
  count?: number
}

let server: Server
let upstream: string

beforeAll(async () => {
  // A tiny upstream: /plain answers with no cookie, /cookies with two of its own.
  server = createServer((request, response) => {
    if (request.url === '/cookies')
      response.setHeader('Set-Cookie', ['up1=one; Path=/', 'up2=two; Path=/; HttpOnly'])
    response.setHeader('Content-Type', 'text/plain')
    response.end(`upstream ${request.url}`)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const address = server.address()
  if (address === null || typeof address !== 'object') throw new Error('the upstream has no port')
  upstream = `http://127.0.0.1:${address.port}`
})

afterAll(async () => {
  // fetch keeps connections alive: close them, or close() waits for their timeout.
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

function appWith(sessions = createSessions<Data>({ store: memoryStore(), secrets: SECRET })) {
  const app = new Hono<SessionEnv<Data>>()
  app.use(session(sessions))
  // Each route changes the session, then answers with what the upstream sent, untouched.
  app.get('/visit/:path', async (c) => {
    const s = c.get('session')
    s.set('count', (s.get('count') ?? 0) + 1)
    const fetched = await fetch(`${upstream}/${c.req.param('path')}`)
    return fetched
  })
  app.post('/login/:path', async (c) => {
    const s = c.get('session')
    s.regenerate({ renew: true })
    s.set('userId', 'u_1')
    return fetch(`${upstream}/${c.req.param('path')}`)
  })
  app.get('/whoami', (c) => c.json({ userId: c.get('session').get('userId') ?? null }))
  return { app, sessions }
}

const sessionCookies = (lines: string[]) => lines.filter((line) => line.startsWith('sid='))
const otherCookies = (lines: string[]) => lines.filter((line) => !line.startsWith('sid='))

describe('session() with a fetched response', () => {
  it('the upstream answers with headers a handler cannot change (the case under test)', async () => {
    const fetched = await fetch(`${upstream}/cookies`)
    expect(() => fetched.headers.set('x-test', '1')).toThrow(TypeError)
    expect(fetched.headers.getSetCookie()).toEqual(['up1=one; Path=/', 'up2=two; Path=/; HttpOnly'])
    await fetched.text()
  })

  for (const path of ['plain', 'cookies'] as const) {
    it(`delivers the new session's cookie and the upstream's own, each once (${path})`, async () => {
      const { app, sessions } = appWith()
      const jar = new CookieJar()
      const response = await app.request(jar.request(`${ORIGIN}/visit/${path}`))
      const lines = jar.update(response)
      expect(response.status).toBe(200)
      expect(await response.text()).toBe(`upstream /${path}`)
      expect(sessionCookies(lines)).toHaveLength(1)
      expect(otherCookies(lines)).toEqual(
        path === 'cookies' ? ['up1=one; Path=/', 'up2=two; Path=/; HttpOnly'] : [],
      )
      // The record written is the one the browser holds: no orphan, and the next visit continues it.
      expect(await sessions.count()).toBe(1)
      const next = await app.request(jar.request(`${ORIGIN}/visit/plain`))
      jar.update(next)
      await next.text()
      expect(await sessions.count()).toBe(1)
      const peek = createSessions<Data>({ store: sessions.options.store, secrets: SECRET })
      expect((await peek.load(jar.request(`${ORIGIN}/`))).get('count')).toBe(2)
    })

    it(`keeps a login that regenerates the session (${path})`, async () => {
      const { app, sessions } = appWith()
      const jar = new CookieJar()
      jar.update(await app.request(jar.request(`${ORIGIN}/visit/plain`)))
      const before = jar.get('sid')
      const login = await app.request(jar.request(`${ORIGIN}/login/${path}`, { method: 'POST' }))
      const lines = jar.update(login)
      await login.text()
      expect(sessionCookies(lines)).toHaveLength(1)
      expect(jar.get('sid')).not.toBe(before)
      expect(otherCookies(lines)).toHaveLength(path === 'cookies' ? 2 : 0)
      // Still logged in on the next request, and the old record is gone rather than orphaned.
      const whoami = await app.request(jar.request(`${ORIGIN}/whoami`))
      expect(await whoami.json()).toEqual({ userId: 'u_1' })
      expect(await sessions.count()).toBe(1)
    })
  }

  it('uses app.fetch the same way', async () => {
    const { app } = appWith()
    const response = await app.fetch(new Request(`${ORIGIN}/visit/cookies`))
    const lines = response.headers.getSetCookie()
    await response.text()
    expect(sessionCookies(lines)).toHaveLength(1)
    expect(otherCookies(lines)).toEqual(['up1=one; Path=/', 'up2=two; Path=/; HttpOnly'])
  })
})
