/**
 * @module The cookie cache (`cookieCache: { maxAge }`): store calls per request, never stale for its own writes,
 * bounded revocation, flash, regenerate, rotation, size, and hostile cache cookies.
 */

import {
  createSessions,
  type ServerStore,
  type Session,
  SessionError,
  type SessionsOptions,
} from 'edge-session'
import { session as sessionMiddleware } from 'edge-session/hono'
import { cookieStore } from 'edge-session/stores/cookie'
import { memoryStore } from 'edge-session/stores/memory'
import fc from 'fast-check'
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { countingStore } from '../support/counting-store.ts'
import { CookieJar, manualClock } from '../support/jar.ts'

const SECRET = 'cookie-cache-test-secret-0123456789abcdefgh'
const OLD_SECRET = 'cookie-cache-old-secret-0123456789abcdefghi'
const MAX_AGE = 30
const IDLE = 1800
const TOUCH = 60

type Data = Record<string, unknown>

/**
 * A store that cannot answer the record a write leaves (it answers `true`, as MySQL 8 does): the cache's commit
 * path then clears the cache cookie. The memory store itself answers the record, as Redis scripts and SQL
 * `RETURNING` do.
 */
function nonAnsweringStore(inner: ServerStore): ServerStore {
  const { touch } = inner
  const plain = (answer: unknown) => answer !== false
  return {
    ...inner,
    name: inner.name,
    get: (key, ctx) => inner.get(key, ctx),
    set: (key, record, ttl, ctx, replaces) => inner.set(key, record, ttl, ctx, replaces),
    delete: (key, ctx) => inner.delete(key, ctx),
    count: (ctx) => (inner.count as NonNullable<ServerStore['count']>).call(inner, ctx),
    patch: async (key, patch, ttl, ctx) => plain(await inner.patch(key, patch, ttl, ctx)),
    ...(touch
      ? { touch: async (key, meta, ttl, ctx) => plain(await touch.call(inner, key, meta, ttl, ctx)) }
      : {}),
  }
}

function setup(options: Partial<SessionsOptions> & { answers?: boolean; inner?: ServerStore } = {}) {
  const { answers = true, inner = memoryStore(), ...rest } = options
  const store = countingStore(answers ? inner : nonAnsweringStore(inner))
  const clock = manualClock()
  const common = {
    store,
    secrets: SECRET,
    idleTimeout: IDLE,
    touchInterval: TOUCH,
    now: clock.now,
    cookieCache: { maxAge: MAX_AGE },
    ...rest,
  }
  const sessions = createSessions<Data>(common)
  /** One request: load (`fresh` to ignore the cache), `handle`, commit, keep the cookies. */
  async function visit<T>(jar: CookieJar, handle: (s: Session<Data>) => T, fresh = false) {
    const session = await sessions.load(jar.request(), undefined, fresh ? { fresh } : undefined)
    const result = handle(session)
    const response = await sessions.commit(session, new Response('ok'))
    return { session, result, setCookies: jar.update(response) }
  }
  const methods = () => store.calls.map((call) => call.method)
  const reset = () => {
    store.calls.length = 0
  }
  return { store, inner, clock, sessions, visit, methods, reset, common }
}

/** A jar with a session holding `data`, and a warm cache. */
async function loggedIn(visit: ReturnType<typeof setup>['visit'], data: Data = { user: 'ada' }) {
  const jar = new CookieJar()
  await visit(jar, (s) => {
    for (const [key, value] of Object.entries(data)) s.set(key, value)
  })
  return jar
}

const names = (setCookies: string[]) => setCookies.map((line) => line.slice(0, line.indexOf('=')))
const cleared = (setCookies: string[], name: string) =>
  setCookies.some((line) => line.startsWith(`${name}=;`) && /Max-Age=0/.test(line))

describe('cookieCache options', () => {
  function configError(options: Partial<SessionsOptions>): SessionError | null {
    try {
      createSessions({ store: memoryStore(), secrets: SECRET, ...options } as SessionsOptions)
    } catch (error) {
      return error as SessionError
    }
    return null
  }

  it('refuses the cookie store, a maxAge outside 1..300 or not whole, and unknown keys, with ERR_CONFIG', () => {
    const bad: unknown[] = [
      { store: cookieStore(), cookieCache: { maxAge: 30 } },
      { cookieCache: { maxAge: 0 } },
      { cookieCache: { maxAge: 301 } },
      { cookieCache: { maxAge: 1.5 } },
      { cookieCache: { maxAge: -5 } },
      { cookieCache: { maxAge: Number.NaN } },
      { cookieCache: { maxAge: '30' } },
      { cookieCache: {} },
      { cookieCache: 30 },
      { cookieCache: null },
    ]
    for (const options of bad) {
      const error = configError(options as Partial<SessionsOptions>)
      expect(error, JSON.stringify(options)).toBeInstanceOf(SessionError)
      expect(error?.code).toBe('ERR_CONFIG')
    }
    expect(configError({ store: cookieStore(), cookieCache: { maxAge: 30 } })?.message).toMatch(
      /server store/,
    )
    const typo = configError({ cookieCache: { maxage: 30 } } as unknown as Partial<SessionsOptions>)
    expect(typo?.message).toMatch(/Unknown option cookieCache\.maxage: did you mean cookieCache\.maxAge\?/)
    expect(configError({ cookieCache: { maxAge: 1 } })).toBeNull()
    expect(configError({ cookieCache: { maxAge: 300 } })).toBeNull()
    expect(createSessions({ store: memoryStore(), secrets: SECRET }).options.cookieCache).toBeUndefined()
  })
})

describe('cookie cache: store calls', () => {
  it('a cold read makes one call and issues the cache; a warm read makes none and sends no cookie', async () => {
    const { visit, methods, reset, sessions } = setup()
    const jar = await loggedIn(visit)
    const name = sessions.options.cookie.name
    // The first write issued the cache alongside the session cookie, with the same attributes.
    const [sid, cache] = [jar.get(name), jar.get(`${name}.cache`)]
    expect(sid).toBeDefined()
    expect(cache).toMatch(/^Fe26\.2\*/)
    jar.cookies.delete(`${name}.cache`)
    reset()
    const cold = await visit(jar, (s) => s.get('user'))
    expect(cold.result).toBe('ada')
    expect(methods()).toEqual(['get'])
    expect(names(cold.setCookies)).toEqual([`${name}.cache`])
    expect(cold.setCookies[0]).toMatch(
      new RegExp(
        `^${name}\\.cache=Fe26\\.2\\*[^;]+; Max-Age=${MAX_AGE}; Path=/; HttpOnly; Secure; SameSite=Lax$`,
      ),
    )
    reset()
    for (let i = 0; i < 3; i++) {
      const warm = await visit(jar, (s) => [s.get('user'), s.isNew, s.handle])
      expect(warm.result).toEqual(['ada', false, cold.session.handle])
      expect(warm.setCookies).toEqual([])
    }
    expect(methods()).toEqual([])
  })

  it('a change with a warm cache makes one call, and the new cache holds what the store holds after it', async () => {
    const { visit, sessions, methods, reset } = setup()
    const jar = await loggedIn(visit)
    const other = jar.clone()
    // Held open between load and commit: another tab commits a change in between.
    const slow = await sessions.load(jar.request())
    await visit(other, (s) => s.set('b', 'from the other tab'), true)
    reset()
    slow.set('a', 1)
    const response = await sessions.commit(slow, new Response())
    expect(methods()).toEqual(['patch'])
    jar.update(response)
    reset()
    const next = await visit(jar, (s) => s.all())
    expect(methods()).toEqual([])
    expect(next.result).toEqual({ user: 'ada', a: 1, b: 'from the other tab' })
  })

  it('a due touch with a warm cache makes one call, and keeps idle expiry exact', async () => {
    const { visit, methods, reset, clock } = setup({ touchInterval: 10 })
    const jar = await loggedIn(visit)
    const start = clock.now()
    clock.advance(11_000)
    reset()
    const touched = await visit(jar, () => undefined)
    expect(methods()).toEqual(['touch'])
    expect(touched.session.expiresAt).toBe(start + 11_000 + IDLE * 1000)
    // The touch answered the record: the cache is reissued, the next read is free.
    reset()
    await visit(jar, (s) => s.get('user'))
    expect(methods()).toEqual([])
    // Idle past the deadline (no request): the session ends, whatever the cache says.
    clock.advance(IDLE * 1000)
    const ended = await visit(jar, (s) => s.get('user'))
    expect(ended.session.isNew).toBe(true)
  })

  it('where the store cannot answer the record, a write clears the cache and the next read refreshes it', async () => {
    const { visit, sessions, methods, reset } = setup({ answers: false })
    const name = sessions.options.cookie.name
    const jar = await loggedIn(visit)
    expect(jar.get(`${name}.cache`)).toBeDefined()
    const changed = await visit(jar, (s) => s.set('a', 1))
    expect(cleared(changed.setCookies, `${name}.cache`)).toBe(true)
    reset()
    const read = await visit(jar, (s) => s.all())
    expect(read.result).toEqual({ user: 'ada', a: 1 })
    expect(methods()).toEqual(['get'])
    expect(names(read.setCookies)).toEqual([`${name}.cache`])
  })

  it('a write that finds the record gone ends the session and clears its cache cookie', async () => {
    const { visit, sessions } = setup()
    const name = sessions.options.cookie.name
    const jar = await loggedIn(visit)
    const other = jar.clone()
    await visit(other, (s) => s.destroy())
    const late = await visit(jar, (s) => s.set('a', 1))
    expect(late.session.destroyed).toBe(true)
    expect(late.setCookies).toEqual([expect.stringMatching(new RegExp(`^${name}\\.cache=;.*Max-Age=0`))])
    expect((await visit(jar, (s) => s.get('user'))).session.isNew).toBe(true)
  })

  it('destroy() clears the cache cookie with the session cookie', async () => {
    const { visit, sessions } = setup()
    const name = sessions.options.cookie.name
    const jar = await loggedIn(visit)
    const copy = jar.clone()
    const destroyed = await visit(jar, (s) => s.destroy())
    expect(cleared(destroyed.setCookies, name)).toBe(true)
    expect(cleared(destroyed.setCookies, `${name}.cache`)).toBe(true)
    expect(jar.cookies.size).toBe(0)
    // A copy of both cookies taken before: trusted for maxAge at most (the bound the docs state).
    expect((await visit(copy, (s) => s.get('user'))).result).toBe('ada')
  })
})

describe('cookie cache: revocation and freshness', () => {
  it('a revocation from another device is seen within maxAge, and at once with { fresh: true }', async () => {
    const { visit, sessions, clock, methods, reset } = setup()
    const jar = new CookieJar()
    const login = await visit(jar, (s) => s.setUser('ada'))
    const issued = clock.now()
    expect(await sessions.revokeUserSession('ada', login.session.handle)).toBe(true)
    // A fresh read sees it now, with a copy of the cookies (this browser's other route).
    const fresh = await visit(jar.clone(), (s) => s.userId, true)
    expect(fresh.session.isNew).toBe(true)
    // The cache still answers until maxAge from its issue, and not a moment longer.
    clock.set(issued + MAX_AGE * 1000 - 1)
    reset()
    const cached = await visit(jar, (s) => s.userId)
    expect(cached.result).toBe('ada')
    expect(methods()).toEqual([])
    clock.set(issued + MAX_AGE * 1000)
    const ended = await visit(jar, (s) => s.userId)
    expect(ended.session.isNew).toBe(true)
    expect(ended.result).toBeNull()
    expect(methods()).toEqual(['get'])
  })

  it('a cache is never trusted past the session deadlines, and its Max-Age never reaches past them', async () => {
    const { visit, sessions, clock } = setup({ idleTimeout: 20, touchInterval: 5 })
    const name = sessions.options.cookie.name
    const jar = new CookieJar()
    const created = await visit(jar, (s) => s.set('user', 'ada'))
    const cacheCookie = created.setCookies.find((line) => line.startsWith(`${name}.cache=`))
    expect(cacheCookie).toMatch(/Max-Age=20(;|$)/)
    clock.advance(20_000)
    const expired = await visit(jar, (s) => s.get('user'))
    expect(expired.session.isNew).toBe(true)
    expect(expired.result).toBeUndefined()
  })

  it('the Hono middleware with { fresh: true } reads the store on its routes', async () => {
    const { sessions, visit, methods, reset } = setup()
    const jar = await loggedIn(visit)
    const app = new Hono<{ Variables: { session: Session<Data> } }>()
    app.use('/account/*', sessionMiddleware(sessions, { fresh: true }))
    app.use('/page', sessionMiddleware(sessions))
    app.get('/account/settings', (c) => c.text(String(c.get('session').get('user'))))
    app.get('/page', (c) => c.text(String(c.get('session').get('user'))))
    reset()
    const page = await app.request('https://app.example/page', { headers: { cookie: jar.header() } })
    expect(await page.text()).toBe('ada')
    expect(methods()).toEqual([])
    const account = await app.request('https://app.example/account/settings', {
      headers: { cookie: jar.header() },
    })
    expect(await account.text()).toBe('ada')
    expect(methods()).toEqual(['get'])
  })

  it('nested under the app-wide middleware, { fresh: true } reads the store once and the session is committed once', async () => {
    const { sessions, visit, methods, reset } = setup()
    const name = sessions.options.cookie.name
    const jar = await loggedIn(visit)
    const copy = jar.clone()
    const app = new Hono<{ Variables: { session: Session<Data> } }>()
    app.use(sessionMiddleware(sessions))
    app.use('/account/*', sessionMiddleware(sessions, { fresh: true }))
    app.get('/page', (c) => c.text(String(c.get('session').get('user'))))
    app.get('/account/settings', (c) => c.text(String(c.get('session').get('user'))))
    app.post('/account/name', (c) => {
      c.get('session').set('name', 'Ada L.')
      return c.text('saved')
    })
    const get = async (path: string, method = 'GET') => {
      const response = await app.request(`https://app.example${path}`, {
        method,
        headers: { cookie: jar.header() },
      })
      return { text: await response.text(), setCookies: jar.update(response) }
    }
    // Without a cache cookie (cold): the app-wide middleware reads the store, and the fresh one nested in it
    // reads nothing more: one read, one cache cookie.
    jar.cookies.delete(`${name}.cache`)
    reset()
    const cold = await get('/account/settings')
    expect(cold.text).toBe('ada')
    expect(methods()).toEqual(['get'])
    expect(names(cold.setCookies)).toEqual([`${name}.cache`])
    reset()
    expect((await get('/page')).text).toBe('ada')
    expect(methods()).toEqual([])
    // Warm: a fresh route makes one store read (not a cached view, not two loads), and one cache reissued from it.
    const settings = await get('/account/settings')
    expect(settings.text).toBe('ada')
    expect(methods()).toEqual(['get'])
    expect(names(settings.setCookies)).toEqual([`${name}.cache`])
    // A change on a fresh route: one read, one write, each cookie once.
    reset()
    const saved = await get('/account/name', 'POST')
    expect(saved.text).toBe('saved')
    expect(methods()).toEqual(['get', 'patch'])
    expect(names(saved.setCookies).sort()).toEqual([name, `${name}.cache`])
    expect((await visit(jar.clone(), (s) => s.get('name'), true)).result).toBe('Ada L.')
    // Revoked elsewhere (destroyed by another copy of the cookies): the app-wide routes may still see the cache
    // until maxAge; the fresh route sees it at once, with no error.
    await visit(copy, (s) => s.destroy())
    expect((await get('/page')).text).toBe('ada')
    expect((await get('/account/settings')).text).toBe('undefined')
  })

  it('mounted twice without fresh, the middleware loads and commits the session once', async () => {
    const { sessions, visit, methods, reset, clock } = setup({ touchInterval: 10 })
    const name = sessions.options.cookie.name
    const jar = await loggedIn(visit)
    const app = new Hono<{ Variables: { session: Session<Data> } }>()
    app.use(sessionMiddleware(sessions))
    app.use('/a/*', sessionMiddleware(sessions))
    app.post('/a/b', (c) => {
      c.get('session').set('n', 1)
      return c.text('ok')
    })
    reset()
    const response = await app.request('https://app.example/a/b', {
      method: 'POST',
      headers: { cookie: jar.header() },
    })
    expect(methods()).toEqual(['patch'])
    expect(names(jar.update(response)).sort()).toEqual([name, `${name}.cache`])
    // A due touch (the cache still warm) is written once, its cookies sent once.
    clock.advance(11_000)
    reset()
    const touched = await app.request('https://app.example/a/c', { headers: { cookie: jar.header() } })
    expect(touched.status).toBe(404)
    expect(methods()).toEqual(['touch'])
    expect(names(jar.update(touched)).sort()).toEqual([name, `${name}.cache`])
  })
})

describe('cookie cache: flash, regenerate, rotation, size', () => {
  it('issues no cache while the record holds a flash, so a flash is never shown twice', async () => {
    const { visit, sessions, methods, reset } = setup()
    const name = sessions.options.cookie.name
    const jar = await loggedIn(visit)
    const flashed = await visit(jar, (s) => s.flash('notice', 'Saved!'))
    expect(cleared(flashed.setCookies, `${name}.cache`)).toBe(true)
    // A read that leaves the flash: the store is read, still no cache.
    reset()
    const peek = await visit(jar, (s) => s.has('notice'))
    expect(peek.result).toBe(true)
    expect(methods()).toEqual(['get'])
    expect(jar.get(`${name}.cache`)).toBeUndefined()
    const shown = await visit(jar, (s) => s.get('notice'))
    expect(shown.result).toBe('Saved!')
    const again = await visit(jar, (s) => s.get('notice'))
    expect(again.result).toBeUndefined()
  })

  it('keeps a flash set by one tab when others, loaded from the cache before it, change a key or touch', async () => {
    const { visit, sessions, clock, methods, reset } = setup({ touchInterval: 10 })
    const jar = await loggedIn(visit)
    clock.advance(11_000)
    // All three load from the warm cache (no flash in it) before any commits: one browser, three tabs.
    reset()
    const flasher = await sessions.load(jar.request())
    const writer = await sessions.load(jar.request())
    const toucher = await sessions.load(jar.request())
    expect(methods()).toEqual([])
    flasher.flash('notice', 'Saved!')
    jar.update(await sessions.commit(flasher, new Response()))
    writer.set('a', 1)
    jar.update(await sessions.commit(writer, new Response()))
    jar.update(await sessions.commit(toucher, new Response()))
    expect(methods()).toEqual(['patch', 'patch', 'touch'])
    // No response left a cache holding the record without its flash.
    expect(jar.get('sid.cache')).toBeUndefined()
    expect((await visit(jar, (s) => s.get('notice'))).result).toBe('Saved!')
    const after = await visit(jar, (s) => [s.get('notice'), s.all()])
    expect(after.result).toEqual([undefined, { user: 'ada', a: 1 }])
  })

  it('a regenerate from a cached view reads the store first: the change of another tab is kept (keep applies)', async () => {
    const { visit, sessions, methods, reset } = setup()
    const jar = await loggedIn(visit, { user: 'ada', a: 1 })
    // Another tab changes the record after this browser's cache was issued.
    await visit(jar.clone(), (s) => s.set('b', 2).set('a', 'changed'), true)
    reset()
    const regenerated = await visit(jar, (s) => {
      // Loaded from the cache: the view lacks the other tab's change.
      expect(methods()).toEqual([])
      expect(s.all()).toEqual({ user: 'ada', a: 1 })
      s.set('c', 3).regenerate()
    })
    expect(methods()).toEqual(['get', 'set'])
    expect(regenerated.session.all()).toEqual({ user: 'ada', a: 'changed', b: 2, c: 3 })
    const after = await visit(jar, (s) => s.all())
    expect(after.result).toEqual({ user: 'ada', a: 'changed', b: 2, c: 3 })
    // With keep: only the kept keys, and what this request set after.
    await visit(jar.clone(), (s) => s.set('d', 4), true)
    await visit(jar, (s) => s.regenerate({ keep: ['user'] }).set('e', 5))
    expect((await visit(jar, (s) => s.all())).result).toEqual({ user: 'ada', e: 5 })
    // A login from a cached view keeps another tab's change too.
    await visit(jar.clone(), (s) => s.set('cart', ['book']), true)
    const login = await visit(jar, (s) => s.setUser('ada-id'))
    expect(login.session.all()).toEqual({ user: 'ada', e: 5, cart: ['book'] })
    expect(sessions.options.cookieCache).toEqual({ maxAge: MAX_AGE })
  })

  it('a regenerate from a cached view whose record is gone ends the session', async () => {
    const { visit, sessions } = setup()
    const jar = await loggedIn(visit)
    await visit(jar.clone(), (s) => s.destroy())
    const regenerated = await visit(jar, (s) => s.regenerate())
    expect(regenerated.session.destroyed).toBe(true)
    expect(cleared(regenerated.setCookies, `${sessions.options.cookie.name}.cache`)).toBe(true)
  })

  it('re-seals a cache sealed under an older secret without a store call, never extending it', async () => {
    const { store, clock, common } = setup()
    const before = createSessions<Data>({ ...common, secrets: [OLD_SECRET] })
    const after = createSessions<Data>({ ...common, secrets: [SECRET, OLD_SECRET] })
    const onlyNew = createSessions<Data>({ ...common, secrets: [SECRET] })
    const jar = new CookieJar()
    const s1 = await before.load(jar.request())
    s1.set('user', 'ada')
    jar.update(await before.commit(s1, new Response()))
    const issued = clock.now()
    clock.advance(10_000)
    store.calls.length = 0
    const s2 = await after.load(jar.request())
    expect(s2.get('user')).toBe('ada')
    const reissued = jar.update(await after.commit(s2, new Response()))
    expect(store.calls).toEqual([])
    const cache = reissued.find((line) => line.startsWith('sid.cache='))
    expect(cache).toMatch(new RegExp(`Max-Age=${MAX_AGE - 10}(;|$)`))
    expect(names(reissued).sort()).toEqual(['sid', 'sid.cache'])
    const s3 = await onlyNew.load(jar.request())
    expect(s3.get('user')).toBe('ada')
    expect(store.calls).toEqual([])
    // Trusted until maxAge from the original issue, not from the re-seal.
    clock.set(issued + MAX_AGE * 1000)
    await onlyNew.load(jar.request())
    expect(store.calls.map((call) => call.method)).toEqual(['get'])
  })

  it('sends no cache cookie past 4096 bytes (an old one is cleared), and the session works through the store', async () => {
    const { visit, sessions, methods, reset } = setup()
    const name = sessions.options.cookie.name
    const jar = await loggedIn(visit)
    expect(jar.get(`${name}.cache`)).toBeDefined()
    const big = await visit(jar, (s) => s.set('text', 'x'.repeat(3500)))
    expect(cleared(big.setCookies, `${name}.cache`)).toBe(true)
    expect(big.setCookies.every((line) => line.length <= 4096)).toBe(true)
    reset()
    const read = await visit(jar, (s) => (s.get('text') as string).length)
    expect(read.result).toBe(3500)
    expect(methods()).toEqual(['get'])
    expect(read.setCookies).toEqual([])
  })
})

describe('cookie cache: hostile cache cookies are ignored, never an error', () => {
  it('reads the store for a forged, tampered, foreign, expired, unknown-secret or duplicated cache', async () => {
    const { visit, sessions, methods, reset, clock, common } = setup()
    const name = `${sessions.options.cookie.name}.cache`
    const jar = await loggedIn(visit)
    const good = jar.get(name) as string
    const stranger = await loggedIn(visit, { user: 'mallory' })
    const foreign = stranger.get(name) as string
    const elsewhere = createSessions<Data>({ ...common, secrets: [OLD_SECRET] })
    const otherJar = new CookieJar()
    const s = await elsewhere.load(otherJar.request())
    s.set('user', 'eve')
    otherJar.update(await elsewhere.commit(s, new Response()))
    const unknownSecret = otherJar.get(name) as string
    const flipped = good.slice(0, -1) + (good.endsWith('A') ? 'B' : 'A')
    const parts = good.split('*')
    parts[4] = `${(parts[4] as string).slice(0, -2)}AA`
    const variants = [
      '',
      'garbage',
      'Fe26.2**********',
      flipped,
      parts.join('*'),
      foreign,
      unknownSecret,
      'a'.repeat(4000),
    ]
    for (const value of variants) {
      const forged = jar.clone()
      forged.cookies.set(name, value)
      reset()
      const read = await visit(forged, (x) => x.get('user'))
      expect(read.result, value.slice(0, 40)).toBe('ada')
      expect(methods(), value.slice(0, 40)).toEqual(['get'])
    }
    // Two cache cookies of this session (another path kept an older one): neither is guessed at.
    await visit(jar, (x) => x.set('a', 1))
    reset()
    const header = `${jar.header()}; ${name}=${good}`
    const duplicated = await sessions.load(
      new Request('https://app.example/', { headers: { cookie: header } }),
    )
    expect(duplicated.all()).toEqual({ user: 'ada', a: 1 })
    expect(methods()).toEqual(['get'])
    // Expired: maxAge passed.
    clock.advance(MAX_AGE * 1000)
    reset()
    expect((await visit(jar.clone(), (x) => x.all())).result).toEqual({ user: 'ada', a: 1 })
    expect(methods()).toEqual(['get'])
  })

  it('a cache cookie without its session cookie opens nothing and is cleared once', async () => {
    const { visit, sessions, methods, reset } = setup()
    const name = sessions.options.cookie.name
    const jar = await loggedIn(visit)
    jar.cookies.delete(name)
    reset()
    const read = await visit(jar, (s) => s.get('user'))
    expect(read.session.isNew).toBe(true)
    expect(read.result).toBeUndefined()
    expect(methods()).toEqual([])
    expect(read.setCookies).toEqual([expect.stringMatching(new RegExp(`^${name}\\.cache=;.*Max-Age=0`))])
    // Next to a forged session cookie: still nothing opens.
    jar.cookies.set(name, `${'A'.repeat(43)}.${'A'.repeat(43)}`)
    const forged = await visit(jar, (s) => s.get('user'))
    expect(forged.session.isNew).toBe(true)
  })

  it('never trusts a changed cache cookie: any one-character change, cut or addition reads the store', async () => {
    const { visit, sessions, methods, reset } = setup()
    const name = `${sessions.options.cookie.name}.cache`
    const jar = await loggedIn(visit, { user: 'ada', n: 1 })
    const good = jar.get(name) as string
    const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const changed = fc.oneof(
      fc
        .tuple(fc.nat(good.length - 1), fc.constantFrom(...BASE64URL, '*', '.'))
        .map(([at, ch]) => good.slice(0, at) + ch + good.slice(at + 1)),
      fc.nat(good.length - 1).map((at) => good.slice(0, at)),
      fc
        .string({ unit: fc.constantFrom(...BASE64URL), minLength: 1, maxLength: 4 })
        .map((tail) => good + tail),
    )
    await fc.assert(
      fc.asyncProperty(changed, async (value) => {
        fc.pre(value !== good)
        const forged = jar.clone()
        forged.cookies.set(name, value)
        reset()
        const session = await sessions.load(forged.request())
        expect(session.all()).toEqual({ user: 'ada', n: 1 })
        expect(methods()).toEqual(['get'])
      }),
      { numRuns: 150 },
    )
  })
})
