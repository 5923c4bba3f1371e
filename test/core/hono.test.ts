/**
 * @module The Hono middleware: typed c.get('session'), commit after the handler whatever Response it returns,
 * nothing committed for a failed request, 503 on store failure. (A fetched Response: hono-fetched.test.ts.)
 */

import { createSessions, type ServerStore, SessionError } from 'edge-session'
import { type SessionEnv, session } from 'edge-session/hono'
import { memoryStore } from 'edge-session/stores/memory'
import { type Context, Hono } from 'hono'
import { setCookie } from 'hono/cookie'
import { HTTPException } from 'hono/http-exception'
import { streamText } from 'hono/streaming'
import { describe, expect, it } from 'vitest'
import { CookieJar } from '../support/jar.ts'

const SECRET = 'hono-test-secret-0123456789abcdefghijklmn'

interface Data {
  count?: number
  userId?: string
}

function counterApp(store: ServerStore = memoryStore()) {
  const app = new Hono<SessionEnv<Data>>()
  app.use(session<Data>({ store, secrets: SECRET }))
  app.get('/', (c) => {
    const s = c.get('session')
    const count = (s.get('count') ?? 0) + 1
    s.set('count', count)
    return c.text(String(count))
  })
  app.get('/peek', (c) => c.text(String(c.get('session').get('count') ?? 0)))
  app.post('/logout', (c) => {
    c.get('session').destroy()
    return c.redirect('/')
  })
  return app
}

async function get(app: Hono<SessionEnv<Data>>, jar: CookieJar, path = '/', init: RequestInit = {}) {
  const response = await app.request(jar.request(`https://app.example${path}`, init))
  jar.update(response)
  return response
}

describe('session() middleware', () => {
  it('loads before the handler and commits after it', async () => {
    const app = counterApp()
    const jar = new CookieJar()
    expect(await (await get(app, jar)).text()).toBe('1')
    expect(await (await get(app, jar)).text()).toBe('2')
    expect(await (await get(app, jar, '/peek')).text()).toBe('2')
    const other = new CookieJar()
    expect(await (await get(app, other)).text()).toBe('1')
  })

  it('sends no cookie when the handler does not touch the session', async () => {
    const response = await get(counterApp(), new CookieJar(), '/peek')
    expect(response.headers.getSetCookie()).toEqual([])
  })

  it('clears the cookie on destroy, on the very response (a redirect)', async () => {
    const app = counterApp()
    const jar = new CookieJar()
    await get(app, jar)
    const response = await get(app, jar, '/logout', { method: 'POST' })
    expect(response.status).toBe(302)
    expect(response.headers.getSetCookie()).toEqual([expect.stringMatching(/^sid=; Max-Age=0/)])
    expect(await (await get(app, jar, '/peek')).text()).toBe('0')
  })

  it('accepts a sessions instance as well as options', async () => {
    const sessions = createSessions<Data>({ store: memoryStore(), secrets: SECRET })
    const app = new Hono<SessionEnv<Data>>()
    app.use(session(sessions))
    app.get('/', (c) => c.json({ isNew: c.get('session').isNew }))
    expect(await (await app.request('/')).json()).toEqual({ isNew: true })
  })

  it('throws ERR_CONFIG when created with bad options, not at the first request', () => {
    expect(() => session({ store: memoryStore(), secrets: 'short' })).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG' }),
    )
  })

  it('answers 503 with the SessionError as cause, and no cookie, when the store fails on commit', async () => {
    const broken: ServerStore = {
      ...memoryStore(),
      set: async () => Promise.reject(new Error('ECONNREFUSED')),
    }
    const app = counterApp(broken)
    let caught: unknown
    app.onError((error, c) => {
      caught = error
      return error instanceof HTTPException ? error.getResponse() : c.text('unexpected', 500)
    })
    const response = await app.request('https://app.example/')
    expect(response.status).toBe(503)
    expect(response.headers.getSetCookie()).toEqual([])
    expect(caught).toBeInstanceOf(HTTPException)
    expect((caught as HTTPException).cause).toBeInstanceOf(SessionError)
    expect(((caught as HTTPException).cause as SessionError).code).toBe('ERR_STORE')
  })

  it('answers 503 when the store fails on load, without running the handler', async () => {
    const store = memoryStore()
    const healthy = counterApp(store)
    const jar = new CookieJar()
    await get(healthy, jar)
    let ran = false
    const app = new Hono<SessionEnv<Data>>()
    app.use(
      session<Data>({
        store: { ...store, get: async () => Promise.reject(new Error('down')) },
        secrets: SECRET,
      }),
    )
    app.get('/', (c) => {
      ran = true
      return c.text('ok')
    })
    const response = await app.request(jar.request('https://app.example/'))
    expect(response.status).toBe(503)
    expect(ran).toBe(false)
    expect(response.headers.getSetCookie()).toEqual([])
  })

  it('lets errors other than store failures through to the app', async () => {
    const app = new Hono<SessionEnv<Data>>()
    app.use(session<Data>({ store: memoryStore(), secrets: SECRET }))
    app.get('/', (c) => {
      c.get('session').set('count', Number.NaN)
      return c.text('unreachable')
    })
    let caught: unknown
    app.onError((error, c) => {
      caught = error
      return c.text('error', 500)
    })
    expect((await app.request('/')).status).toBe(500)
    expect(caught).toMatchObject({ code: 'ERR_SERIALIZE' })
  })

  it('passes the Workers bindings (c.env) to the store', async () => {
    let seen: unknown
    const store = memoryStore()
    const spy: ServerStore = {
      ...store,
      set: (key, record, ttl, ctx, replaces) => {
        seen = ctx.env
        return store.set(key, record, ttl, ctx, replaces)
      },
    }
    const app = counterApp(spy)
    const env = { SESSIONS: 'binding' }
    await app.request('https://app.example/', {}, env)
    expect(seen).toBe(env)
  })

  describe('whatever Response the handler returns', () => {
    // Each handler writes to the session, sets cookies of its own where its kind of Response can carry them, and
    // answers. `own` is what the app itself set: it must arrive untouched, beside exactly one session cookie.
    const kinds: Array<{
      kind: string
      status: number
      own: string[]
      handle: (c: Context<SessionEnv<Data>>) => Response | Promise<Response>
    }> = [
      {
        kind: 'c.redirect',
        status: 302,
        own: ['app=1; Path=/'],
        handle: (c) => {
          setCookie(c, 'app', '1', { path: '/' })
          return c.redirect('/next')
        },
      },
      {
        kind: 'Response.redirect (immutable headers)',
        status: 302,
        own: [],
        handle: () => Response.redirect('https://app.example/next', 302),
      },
      {
        kind: 'a stream',
        status: 200,
        own: ['app=1; Path=/'],
        handle: (c) => {
          setCookie(c, 'app', '1', { path: '/' })
          return streamText(c, async (stream) => {
            await stream.write('streamed')
          })
        },
      },
      {
        kind: 'c.body',
        status: 201,
        own: ['app=1', 'app2=2'],
        handle: (c) => {
          c.header('Set-Cookie', 'app=1', { append: true })
          c.header('Set-Cookie', 'app2=2', { append: true })
          return c.body('body', 201)
        },
      },
      {
        kind: 'new Response, returned directly',
        status: 200,
        own: ['app=1', 'app2=2'],
        handle: () =>
          new Response('direct', {
            headers: [
              ['Set-Cookie', 'app=1'],
              ['Set-Cookie', 'app2=2'],
            ],
          }),
      },
    ]

    for (const { kind, status, own, handle } of kinds) {
      it(`delivers the session cookie once, and the app's own cookies once: ${kind}`, async () => {
        const sessions = createSessions<Data>({ store: memoryStore(), secrets: SECRET })
        const app = new Hono<SessionEnv<Data>>()
        app.use(session(sessions))
        app.get('/', (c) => {
          const s = c.get('session')
          s.set('count', (s.get('count') ?? 0) + 1)
          return handle(c)
        })
        app.post('/login', (c) => {
          const s = c.get('session')
          s.regenerate({ renew: true })
          s.set('userId', 'u_1')
          return handle(c)
        })
        const jar = new CookieJar()
        for (const step of ['new session', 'changed', 'login'] as const) {
          const before = jar.get('sid')
          const response = await get(app, jar, step === 'login' ? '/login' : '/', {
            method: step === 'login' ? 'POST' : 'GET',
          })
          await response.text()
          expect(response.status, step).toBe(status)
          const lines = response.headers.getSetCookie()
          expect(lines.filter((line) => line.startsWith('sid=')).length, step).toBe(1)
          expect(lines.filter((line) => !line.startsWith('sid=')).sort(), step).toEqual([...own].sort())
          if (step === 'login') expect(jar.get('sid')).not.toBe(before)
        }
        // The browser holds the record that was written last: no orphan, the login kept.
        expect(await sessions.count()).toBe(1)
        const opened = await sessions.load(jar.request('https://app.example/'))
        expect(opened.all()).toEqual({ count: 2, userId: 'u_1' })
      })
    }
  })

  describe('a failed request commits nothing', () => {
    /** An app whose routes change the session in one way each, then fail as `fail` says. */
    function failingApp(fail: () => never) {
      const sessions = createSessions<Data>({ store: memoryStore(), secrets: SECRET })
      const app = new Hono<SessionEnv<Data>>()
      app.use(session(sessions))
      app.get('/', (c) => {
        const s = c.get('session')
        s.set('count', (s.get('count') ?? 0) + 1)
        return c.text(String(s.get('count')))
      })
      app.get('/set', (c) => {
        c.get('session').set('count', 100)
        fail()
      })
      app.get('/regenerate', (c) => {
        const s = c.get('session')
        s.regenerate({ renew: true })
        s.set('userId', 'u_1')
        fail()
      })
      app.get('/destroy', (c) => {
        c.get('session').destroy()
        fail()
      })
      return { app, sessions }
    }

    const failures: Array<[string, () => never, ((app: Hono<SessionEnv<Data>>) => void)?]> = [
      [
        'an Error, onError renders a 500',
        () => {
          throw new Error('boom')
        },
        (app) => {
          // What Hono's default handler answers, without its console.error.
          app.onError((_error, c) => c.text('Internal Server Error', 500))
        },
      ],
      [
        'an Error, rendered by onError with a Set-Cookie of its own',
        () => {
          throw new Error('boom')
        },
        (app) => {
          app.onError((_error, c) => {
            setCookie(c, 'failed', '1')
            return c.text('failed', 500)
          })
        },
      ],
      [
        'a 503 HTTPException, rendered by the default handler',
        () => {
          throw new HTTPException(503, { message: 'down' })
        },
      ],
      [
        'a 500 HTTPException, rendered by the default handler',
        () => {
          throw new HTTPException(500)
        },
      ],
    ]

    for (const [name, fail, configure] of failures) {
      for (const path of ['/set', '/regenerate', '/destroy']) {
        it(`${name}: ${path} leaves the store and the cookie as they were`, async () => {
          const { app, sessions } = failingApp(fail)
          configure?.(app)
          const jar = new CookieJar()
          await get(app, jar)
          await get(app, jar)
          const cookie = jar.get('sid')
          const response = await get(app, jar, path)
          expect(response.status).toBeGreaterThanOrEqual(500)
          expect(response.headers.getSetCookie().filter((line) => line.startsWith('sid='))).toEqual([])
          expect(jar.get('sid')).toBe(cookie)
          // The old record, with its data, and the old cookie still opens it.
          expect(await sessions.count()).toBe(1)
          const opened = await sessions.load(jar.request('https://app.example/'))
          expect(opened.isNew).toBe(false)
          expect(opened.all()).toEqual({ count: 2 })
          expect(await (await get(app, jar)).text()).toBe('3')
        })
      }
    }

    it('a new session that fails is not stored and gets no cookie', async () => {
      const { app, sessions } = failingApp(() => {
        throw new Error('boom')
      })
      app.onError((_error, c) => c.text('failed', 500))
      const jar = new CookieJar()
      const response = await get(app, jar, '/set')
      expect(response.status).toBe(500)
      expect(response.headers.getSetCookie()).toEqual([])
      expect(await sessions.count()).toBe(0)
    })

    it('an error thrown by a middleware after the handler counts as a failure too', async () => {
      const sessions = createSessions<Data>({ store: memoryStore(), secrets: SECRET })
      const app = new Hono<SessionEnv<Data>>()
      app.use(session(sessions))
      app.use(async (_c, next) => {
        await next()
        throw new Error('after the handler')
      })
      app.get('/', (c) => {
        c.get('session').set('count', 1)
        return c.text('ok')
      })
      app.onError((_error, c) => c.text('failed', 500))
      const response = await app.request('https://app.example/')
      expect(response.status).toBe(500)
      expect(response.headers.getSetCookie()).toEqual([])
      expect(await sessions.count()).toBe(0)
    })

    it('an HTTPException below 500 is an answer, not a failure: it commits', async () => {
      const sessions = createSessions<Data>({ store: memoryStore(), secrets: SECRET })
      const app = new Hono<SessionEnv<Data>>()
      app.use(session(sessions))
      app.get('/', (c) => {
        const s = c.get('session')
        s.set('count', (s.get('count') ?? 0) + 1)
        return c.text(String(s.get('count')))
      })
      app.get('/deny', (c) => {
        c.get('session').set('count', 10)
        throw new HTTPException(401, { message: 'log in first' })
      })
      app.get('/moved', (c) => {
        c.get('session').destroy()
        throw new HTTPException(302, { res: Response.redirect('https://app.example/', 302) })
      })
      const jar = new CookieJar()
      await get(app, jar)
      const denied = await get(app, jar, '/deny')
      expect(denied.status).toBe(401)
      expect(await denied.text()).toBe('log in first')
      expect(denied.headers.getSetCookie()).toEqual([expect.stringMatching(/^sid=/)])
      expect(await (await get(app, jar)).text()).toBe('11')
      const moved = await get(app, jar, '/moved')
      expect(moved.status).toBe(302)
      expect(moved.headers.get('location')).toBe('https://app.example/')
      expect(moved.headers.getSetCookie()).toEqual([expect.stringMatching(/^sid=; Max-Age=0/)])
      expect(await sessions.count()).toBe(0)
    })
  })
})
