/** @module The demo app as a user meets it: in-process through app.request, and `npm start` as a real server. */

import { createSessions } from 'edge-session'
import { memoryStore } from 'edge-session/stores/memory'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDemoApp, type DemoData } from '../../examples/shared/app.ts'
import { CookieJar } from '../support/jar.ts'
import { freePort, spawnTracked, type TrackedProcess, waitFor } from '../support/processes.ts'

const SECRET = 'demo-test-secret-0123456789abcdefghijklmn'
const ORIGIN = 'http://localhost:3000'

function demo() {
  const sessions = createSessions<DemoData>({ store: memoryStore(), secrets: SECRET })
  return createDemoApp(sessions, { runtime: 'node', store: 'memory' })
}

async function call(app: ReturnType<typeof demo>, jar: CookieJar, path: string, init: RequestInit = {}) {
  const response = await app.request(jar.request(`${ORIGIN}${path}`, init))
  jar.update(response)
  return response
}

const json = { 'content-type': 'application/json', accept: 'application/json' }

describe('the demo app', () => {
  it('counts visits in JSON, logs in with a new cookie and logs out with a cleared one', async () => {
    const app = demo()
    const jar = new CookieJar()
    expect(await (await call(app, jar, '/api/session')).json()).toEqual({ visits: 1, user: null })
    expect(await (await call(app, jar, '/api/session')).json()).toEqual({ visits: 2, user: null })
    const before = jar.get('sid')
    const login = await call(app, jar, '/api/login', {
      method: 'POST',
      headers: json,
      body: '{"user":"ada"}',
    })
    expect(login.status).toBe(200)
    expect(await login.json()).toEqual({ user: 'ada' })
    expect(login.headers.getSetCookie()).toHaveLength(1)
    expect(jar.get('sid')).not.toBe(before)
    expect(await (await call(app, jar, '/api/session')).json()).toEqual({ visits: 3, user: 'ada' })
    const logout = await call(app, jar, '/api/logout', {
      method: 'POST',
      headers: { accept: 'application/json' },
    })
    expect(await logout.json()).toEqual({ user: null })
    expect(logout.headers.getSetCookie()).toEqual([expect.stringMatching(/^sid=; Max-Age=0/)])
    expect(await (await call(app, jar, '/api/session')).json()).toEqual({ visits: 1, user: null })
  })

  it("lists the user's devices, revokes one, and logs out the others, as JSON and as forms", async () => {
    const app = demo()
    const login = async (agent: string) => {
      const jar = new CookieJar()
      const response = await call(app, jar, '/api/login', {
        method: 'POST',
        headers: { ...json, 'user-agent': agent },
        body: '{"user":"ada"}',
      })
      expect(response.status).toBe(200)
      return jar
    }
    const phone = await login('Phone/1')
    const laptop = await login('Laptop/1')
    const tablet = await login('Tablet/1')
    const bob = new CookieJar()
    await call(app, bob, '/api/login', { method: 'POST', headers: json, body: '{"user":"bob"}' })

    const listed = (await (await call(app, laptop, '/api/sessions')).json()) as {
      sessions: Array<{ handle: string; userAgent: string | null; current: boolean }>
    }
    expect(listed.sessions.map((d) => [d.userAgent, d.current])).toEqual([
      ['Tablet/1', false],
      ['Laptop/1', true],
      ['Phone/1', false],
    ])
    for (const device of listed.sessions) expect(device.handle).toMatch(/^[A-Za-z0-9_-]{22}$/)
    // The page lists them with a revoke button for every device but this one.
    const page = await (await call(app, laptop, '/')).text()
    expect(page.match(/action="\/api\/sessions\/revoke"/g)).toHaveLength(2)
    expect(page).toContain('this device')

    // Revoke the phone from the laptop (a form post: 303 back to the page).
    const phoneHandle = listed.sessions.find((d) => d.userAgent === 'Phone/1')?.handle ?? ''
    const revoke = await call(app, laptop, '/api/sessions/revoke', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: ORIGIN },
      body: `handle=${phoneHandle}`,
    })
    expect(revoke.status).toBe(303)
    expect(await (await call(app, phone, '/api/session')).json()).toEqual({ visits: 1, user: null })
    // Bob cannot revoke ada's sessions by handle.
    const tabletHandle = listed.sessions.find((d) => d.userAgent === 'Tablet/1')?.handle ?? ''
    const foreign = await call(app, bob, '/api/sessions/revoke', {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ handle: tabletHandle }),
    })
    expect(await foreign.json()).toEqual({ revoked: false })

    const others = await call(app, laptop, '/api/sessions/revoke-others', { method: 'POST', headers: json })
    expect(await others.json()).toEqual({ revoked: 1 })
    expect(await (await call(app, tablet, '/api/session')).json()).toEqual({ visits: 1, user: null })
    const after = (await (await call(app, laptop, '/api/sessions')).json()) as { sessions: unknown[] }
    expect(after.sessions).toHaveLength(1)
    expect(await (await call(app, new CookieJar(), '/api/sessions')).json()).toEqual({ sessions: [] })
    const anonymous = await call(app, new CookieJar(), '/api/sessions/revoke-others', {
      method: 'POST',
      headers: json,
    })
    expect(anonymous.status).toBe(401)
  })

  it('shows the page, logs in through the form with a 303, and flashes the welcome once', async () => {
    const app = demo()
    const jar = new CookieJar()
    const page = await (await call(app, jar, '/')).text()
    expect(page).toContain('<form method="post" action="/api/login">')
    expect(page).toContain('Visits in this session: <strong id="visits">1</strong>')
    const form = await call(app, jar, '/api/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: ORIGIN },
      body: 'user=%3Cb%3EAda%3C%2Fb%3E',
    })
    expect(form.status).toBe(303)
    expect(form.headers.get('location')).toBe('/')
    expect(form.headers.getSetCookie()).toHaveLength(1)
    const welcome = await (await call(app, jar, '/')).text()
    expect(welcome).toContain('Welcome, &#60;b&#62;Ada&#60;/b&#62;!')
    expect(welcome).toContain('Logged in as <strong id="user">&#60;b&#62;Ada&#60;/b&#62;</strong>')
    expect(welcome).not.toContain('<b>Ada</b>')
    const again = await (await call(app, jar, '/')).text()
    expect(again).not.toContain('Welcome,')
    expect(again).toContain('Visits in this session: <strong id="visits">3</strong>')
  })

  it('refuses bad user names and cross-site posts', async () => {
    const app = demo()
    const jar = new CookieJar()
    for (const body of ['{}', '{"user":""}', '{"user":42}', `{"user":"${'x'.repeat(65)}"}`, 'not json']) {
      const response = await call(app, jar, '/api/login', { method: 'POST', headers: json, body })
      expect(response.status).toBe(400)
      expect(response.headers.getSetCookie()).toEqual([])
    }
    const crossSite = await call(app, jar, '/api/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
      body: 'user=eve',
    })
    expect(crossSite.status).toBe(403)
    expect(crossSite.headers.getSetCookie()).toEqual([])
  })
})

describe('npm start (the Node example as a process)', () => {
  let server: TrackedProcess
  let base = ''

  beforeAll(async () => {
    const port = await freePort()
    base = `http://127.0.0.1:${port}`
    server = spawnTracked(process.execPath, ['--import', 'tsx', 'examples/node/server.ts'], {
      env: {
        ...process.env,
        PORT: String(port),
        SESSION_SECRET: undefined,
        UPSTASH_REDIS_REST_URL: undefined,
        UPSTASH_REDIS_REST_TOKEN: undefined,
      },
    })
    await waitFor(/listening on/, { what: 'the example to start', timeoutMs: 30_000, process: server })
  })

  afterAll(async () => {
    await server?.stop()
  })

  it('warns that sessions end with the process when SESSION_SECRET is unset, and names its store', () => {
    expect(server.output()).toMatch(/SESSION_SECRET is not set/)
    expect(server.output()).toMatch(/\(node, memory store\) listening on/)
  })

  it('serves sessions over real HTTP, Secure by default even on plain http to this machine', async () => {
    const jar = new CookieJar()
    const first = await fetch(jar.request(`${base}/api/session`))
    const setCookie = first.headers.getSetCookie()
    jar.update(first)
    expect(await first.json()).toEqual({ visits: 1, user: null })
    expect(setCookie).toEqual([
      expect.stringMatching(/^sid=[^;]+; Max-Age=1800; Path=\/; HttpOnly; Secure; SameSite=Lax$/),
    ])
    expect(first.headers.get('x-served-by')).toBe('node')
    const second = await fetch(jar.request(`${base}/api/session`))
    expect(await second.json()).toEqual({ visits: 2, user: null })
  })

  it('stops on SIGTERM', async () => {
    server.child.kill('SIGTERM')
    const { code } = await server.exited
    expect(code).toBe(0)
  })
})
