/** @module createSessions and Session: options, cookie attributes, strictness, failures, round trips. */

import {
  createSessions,
  isSessionError,
  type ServerStore,
  SessionError,
  type SessionsOptions,
} from 'edge-session'
import { cookieStore } from 'edge-session/stores/cookie'
import { memoryStore } from 'edge-session/stores/memory'
import { describe, expect, it, vi } from 'vitest'
import { hashKey } from '../../src/crypto.ts'
import { countingStore } from '../support/counting-store.ts'
import { CookieJar, manualClock } from '../support/jar.ts'

const SECRET = 'sessions-test-secret-0123456789abcdefghij'

function setup(options: Partial<SessionsOptions> = {}) {
  const store = countingStore(memoryStore())
  const clock = manualClock()
  const sessions = createSessions<Record<string, unknown>>({
    store,
    secrets: SECRET,
    now: clock.now,
    ...options,
  })
  return { store, clock, sessions, calls: store.calls }
}

async function roundTrip(
  sessions: ReturnType<typeof setup>['sessions'],
  jar: CookieJar,
  handle: (s: Awaited<ReturnType<typeof sessions.load>>) => void,
  url?: string,
) {
  const session = await sessions.load(jar.request(url))
  handle(session)
  const response = await sessions.commit(session, new Response('ok'))
  return { session, response, setCookies: jar.update(response) }
}

function configError(options: Partial<SessionsOptions>): unknown {
  try {
    createSessions({ store: memoryStore(), secrets: SECRET, ...options } as SessionsOptions)
  } catch (error) {
    return error
  }
  return null
}

describe('createSessions options', () => {
  it('throws ERR_CONFIG at creation for every bad option', () => {
    const bad: Array<Partial<SessionsOptions>> = [
      { secrets: 'short' },
      { secrets: [] },
      { secrets: [SECRET, 'short'] },
      { secrets: 42 as unknown as string },
      { store: undefined as unknown as ServerStore },
      { store: {} as ServerStore },
      { idleTimeout: 0 },
      { idleTimeout: -1 },
      { idleTimeout: Number.NaN },
      { absoluteTimeout: 0 },
      { touchInterval: -1 },
      { idleTimeout: 60, touchInterval: 60 },
      { storeTimeout: 0 },
      { now: 5 as unknown as () => number },
      { cookie: { name: 'bad name' } },
      { cookie: { name: '' } },
      { cookie: { path: 'relative' } },
      { cookie: { path: '/;evil' } },
      { cookie: { domain: '' } },
      { cookie: { sameSite: 'lax' as 'Lax' } },
      { cookie: { secure: 'yes' as unknown as boolean } },
      { cookie: { name: '__Host-sid', secure: false } },
      { cookie: { name: '__Host-sid', path: '/app' } },
      { cookie: { name: '__Host-sid', domain: 'example.com' } },
      { cookie: { name: '__Secure-sid', secure: false } },
      { cookie: { sameSite: 'None', secure: false } },
      { cookie: { partitioned: true, secure: false } },
      // Browsers match the prefixes case-insensitively (RFC 6265bis §5.7) and reject these.
      { cookie: { name: '__host-sid', secure: false } },
      { cookie: { name: '__HOST-sid', path: '/app' } },
      { cookie: { name: '__secure-sid', secure: false } },
      // Values that would make every commit throw after its store write.
      { cookie: { domain: 'a b' } },
      { cookie: { domain: 'example.com;x' } },
      { cookie: { domain: 'exa_mple.com' } },
      { cookie: { domain: '-bad.example' } },
      { cookie: { path: '/ü' } },
      { cookie: { path: '/a\u0000' } },
      { cookie: { path: '/a\u007f' } },
      { cookie: { httpOnly: 'yes' as unknown as boolean } },
      { cookie: 'sid' as unknown as object },
      // A store's own floor between touches must leave room to keep a reading user alive.
      { store: { ...memoryStore(), minTouchInterval: 60_000 }, idleTimeout: 60, touchInterval: 0 },
    ]
    for (const options of bad) {
      const error = configError(options)
      expect(error, JSON.stringify(options)).toBeInstanceOf(SessionError)
      expect((error as SessionError).code).toBe('ERR_CONFIG')
      expect((error as SessionError).name).toBe('SessionError')
    }
  })

  it('accepts every valid cookie setting, and a plain object with get, set, patch and delete as a store', async () => {
    const ok = [
      { cookie: { domain: 'example.com' } },
      { cookie: { domain: '.sub.example.co.uk' } },
      { cookie: { path: '/app/v1-x_y.z~' } },
      { cookie: { name: '__Host-sid' } },
      { cookie: { name: '__Secure-sid', domain: 'example.com' } },
    ]
    for (const options of ok) expect(configError(options), JSON.stringify(options)).toBeNull()
    const records = new Map<
      string,
      { data: Record<string, unknown>; meta: { createdAt: number; lastSeenAt: number; expiresAt: number } }
    >()
    const plain = {
      name: 'plain',
      get: (key: string) => records.get(key) ?? null,
      set: (
        key: string,
        record: {
          data: Record<string, unknown>
          meta: { createdAt: number; lastSeenAt: number; expiresAt: number }
        },
      ) => {
        records.set(key, record)
        return true
      },
      patch: () => false,
      delete: (key: string) => {
        records.delete(key)
      },
    }
    const sessions = createSessions<{ n?: number }>({ store: plain, secrets: SECRET })
    const s = await sessions.load(new Request('https://app.example/'))
    s.set('n', 1)
    const cookie = (await sessions.commit(s, new Response())).headers.getSetCookie()[0]?.split(';')[0] ?? ''
    const again = await sessions.load(new Request('https://app.example/', { headers: { cookie } }))
    expect(again.get('n')).toBe(1)
  })

  it('names an unknown option and the closest known one', () => {
    const typo = configError({ idleTimout: 60 } as Partial<SessionsOptions>) as SessionError
    expect(typo.code).toBe('ERR_CONFIG')
    expect(typo.message).toMatch(/Unknown option idleTimout: did you mean idleTimeout\?/)
    const nested = configError({
      cookie: { samesite: 'Lax' },
    } as unknown as Partial<SessionsOptions>) as SessionError
    expect(nested.message).toMatch(/Unknown option cookie\.samesite: did you mean cookie\.sameSite\?/)
    const far = configError({ zzz: 1 } as Partial<SessionsOptions>) as SessionError
    expect(far.message).toMatch(/^Unknown option zzz Known options: store, secrets/)
  })

  it('says that an environment variable is probably unset when a secret is undefined, and which one', () => {
    const env: Record<string, string | undefined> = { SESSION_SECRET: undefined }
    const missing = configError({ secrets: env.SESSION_SECRET as string }) as SessionError
    expect(missing.code).toBe('ERR_CONFIG')
    expect(missing.message).toMatch(/options\.secrets is undefined: is the environment variable/)
    const second = configError({ secrets: [SECRET, env.OLD as string] }) as SessionError
    expect(second.message).toMatch(/options\.secrets\[1\] is undefined: is the environment variable/)
  })

  it('narrows the code with isSessionError(error, code)', () => {
    const error: unknown = configError({ idleTimeout: -1 })
    if (!isSessionError(error, 'ERR_CONFIG')) throw new Error('expected ERR_CONFIG')
    const code: 'ERR_CONFIG' = error.code
    expect(code).toBe('ERR_CONFIG')
    expect(isSessionError(error, 'ERR_STORE')).toBe(false)
  })

  it('applies the documented defaults', () => {
    const { options } = createSessions({ store: memoryStore(), secrets: SECRET })
    expect(options).toMatchObject({
      idleTimeout: 1800,
      absoluteTimeout: 604_800,
      touchInterval: 60,
      storeTimeout: 5000,
      cookie: { name: 'sid', path: '/', sameSite: 'Lax', secure: true, httpOnly: true, partitioned: false },
    })
  })
})

describe('values are copies', () => {
  it('a flash value read with get() is a copy: changing it changes nothing stored', async () => {
    const { sessions } = setup()
    const jar = new CookieJar()
    await roundTrip(sessions, jar, (s) => s.flash('notice', { text: 'Saved!', tags: ['a'] }))
    // A request reads the flash and scribbles on it, then fails before commit.
    const first = await sessions.load(jar.request())
    const value = first.get('notice') as { text: string; tags: string[] }
    value.text = 'changed'
    value.tags.push('b')
    const second = await sessions.load(jar.request())
    expect(second.get('notice')).toEqual({ text: 'Saved!', tags: ['a'] })
  })
})

describe('the session cookie', () => {
  it('is HttpOnly, Path=/, SameSite=Lax and Secure by default, with Max-Age following the idle deadline', async () => {
    const { sessions } = setup()
    const { setCookies } = await roundTrip(sessions, new CookieJar(), (s) => s.set('a', 1))
    expect(setCookies).toHaveLength(1)
    expect(setCookies[0]).toMatch(
      /^sid=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}; Max-Age=1800; Path=\/; HttpOnly; Secure; SameSite=Lax$/,
    )
  })

  it('is Secure by default on plain http to this machine too (browsers keep it there)', async () => {
    const { sessions } = setup()
    for (const url of ['http://localhost:3000/', 'http://127.0.0.1:8787/x', 'http://example.com/']) {
      const { setCookies } = await roundTrip(sessions, new CookieJar(), (s) => s.set('a', 1), url)
      expect(setCookies[0]).toMatch(/; Secure(;|$)/)
    }
  })

  it("drops Secure with secure: 'auto' only for plain http to this machine", async () => {
    const { sessions } = setup({ cookie: { secure: 'auto' } })
    const secureFor = async (url: string) => {
      const { setCookies } = await roundTrip(sessions, new CookieJar(), (s) => s.set('a', 1), url)
      return /; Secure/.test(setCookies[0] ?? '')
    }
    expect(await secureFor('http://localhost:3000/')).toBe(false)
    expect(await secureFor('http://127.0.0.1:8787/x')).toBe(false)
    expect(await secureFor('http://[::1]/')).toBe(false)
    expect(await secureFor('http://app.localhost/')).toBe(false)
    expect(await secureFor('http://example.com/')).toBe(true)
    expect(await secureFor('http://localhost.example.com/')).toBe(true)
    expect(await secureFor('https://localhost/')).toBe(true)
  })

  it('keeps Secure on a __Host- cookie even on localhost, and writes Domain and Partitioned when asked', async () => {
    const host = setup({ cookie: { name: '__Host-sid' } }).sessions
    const { setCookies } = await roundTrip(host, new CookieJar(), (s) => s.set('a', 1), 'http://localhost/')
    expect(setCookies[0]).toMatch(/^__Host-sid=.*; Path=\/; HttpOnly; Secure; SameSite=Lax$/)
    const other = setup({
      cookie: { domain: 'example.com', partitioned: true, sameSite: 'None', httpOnly: false },
    })
    const second = await roundTrip(other.sessions, new CookieJar(), (s) => s.set('a', 1))
    expect(second.setCookies[0]).toMatch(
      /; Domain=example\.com; Path=\/; Secure; SameSite=None; Partitioned$/,
    )
  })
})

describe('strict loading', () => {
  it('does not consult the store for a cookie whose signature fails', async () => {
    const { sessions, calls } = setup()
    const forged = new CookieJar()
    forged.cookies.set('sid', `${'A'.repeat(43)}.${'B'.repeat(42)}A`)
    const { session, setCookies } = await roundTrip(sessions, forged, () => undefined)
    expect(session.isNew).toBe(true)
    expect(calls).toEqual([])
    // The bad cookie is cleared, so it is not checked again on every request.
    expect(setCookies).toEqual([expect.stringMatching(/^sid=; Max-Age=0/)])
  })

  it('gives a signed id with no record a fresh session with a new id (a client never chooses its id)', async () => {
    const { sessions, calls, store } = setup()
    const jar = new CookieJar()
    const first = await roundTrip(sessions, jar, (s) => s.set('a', 1))
    // Drop the record behind the library's back, as an eviction or a flush would.
    await store.delete(await hashKey(first.session.id), {
      env: undefined,
      signal: new AbortController().signal,
    })
    calls.length = 0
    const second = await roundTrip(sessions, jar, (s) => s.set('b', 2))
    expect(calls.map((c) => c.method)).toEqual(['get', 'set'])
    expect(second.session.isNew).toBe(true)
    expect(second.session.id).not.toBe(first.session.id)
    expect(second.session.all()).toEqual({ b: 2 })
  })

  it('tries duplicated cookies in order and opens the first that verifies', async () => {
    const { sessions } = setup()
    const jar = new CookieJar()
    const { session } = await roundTrip(sessions, jar, (s) => s.set('user', 'ada'))
    const header = `sid=garbage; sid=${jar.get('sid')}; sid=${'x'.repeat(87)}`
    const loaded = await sessions.load(new Request('https://app.example/', { headers: { cookie: header } }))
    expect(loaded.id).toBe(session.id)
    expect(loaded.get('user')).toBe('ada')
  })
})

describe('a record written before handles existed', () => {
  it('gets a stable handle derived from its key, computed once, not on every request', async () => {
    const { sessions, store, clock } = setup()
    const jar = new CookieJar()
    await roundTrip(sessions, jar, (s) => s.set('a', 1))
    // Drop the handle from the stored record, as a record from before the feature has none.
    const [key] = [...(store as unknown as { calls: { key?: string }[] }).calls].map((c) => c.key)
    const stored = await store.get(key as string, { env: undefined, signal: new AbortController().signal })
    if (!stored) throw new Error('no record')
    const { handle: _, ...meta } = stored.meta
    await store.set(key as string, { data: stored.data, meta }, 60_000, {
      env: undefined,
      signal: new AbortController().signal,
    })
    const first = await roundTrip(sessions, jar, (s) => s.handle)
    expect(first.session.handle).toMatch(/^[\w-]{22}$/)
    const digest = vi.spyOn(crypto.subtle, 'digest')
    clock.advance(1000)
    const again = await roundTrip(sessions, jar, (s) => s.set('b', 2))
    const third = await roundTrip(sessions, jar, () => undefined)
    expect(again.session.handle).toBe(first.session.handle)
    expect(third.session.handle).toBe(first.session.handle)
    expect(digest).not.toHaveBeenCalled()
    digest.mockRestore()
  })
})

describe('store round trips per request kind', () => {
  it('read-only 1, changing 2, new 1, regenerate 2, destroy 2, forged 0', async () => {
    const { sessions, calls, clock } = setup()
    const jar = new CookieJar()
    const kinds: Record<string, string[]> = {}
    const measure = async (kind: string, handle: Parameters<typeof roundTrip>[2]) => {
      calls.length = 0
      clock.advance(1000)
      await roundTrip(sessions, jar, handle)
      kinds[kind] = calls.map((c) => c.method)
    }
    await measure('new', (s) => s.set('a', 1))
    await measure('read-only', (s) => s.get('a'))
    await measure('changing', (s) => s.set('a', 2))
    await measure('regenerate', (s) => s.regenerate())
    await measure('destroy', (s) => s.destroy())
    expect(kinds).toEqual({
      new: ['set'],
      'read-only': ['get'],
      changing: ['get', 'patch'],
      regenerate: ['get', 'set'],
      destroy: ['get', 'delete'],
    })
  })

  it('per user: login 2 (as a regenerate), a bound read 1, list 2, revoke one 2, revoke all 2, countUsers 1', async () => {
    const { sessions, calls, clock } = setup()
    const jar = new CookieJar()
    await roundTrip(sessions, jar, (s) => s.set('a', 1))
    const kinds: Record<string, string[]> = {}
    const measure = async (kind: string, run: () => Promise<unknown>) => {
      calls.length = 0
      clock.advance(1000)
      await run()
      kinds[kind] = calls.map((c) => c.method)
    }
    let handle = ''
    await measure('login', () => roundTrip(sessions, jar, (s) => s.setUser('u')))
    await measure('bound read', () => roundTrip(sessions, jar, (s) => (handle = s.handle)))
    await measure('list', () => sessions.listUserSessions('u'))
    await measure('revoke one', () => sessions.revokeUserSession('u', 'not-a-handle'))
    await measure('countUsers', () => sessions.countUsers())
    await measure('revoke all', () => sessions.revokeUserSessions('u', {}))
    expect(handle).toMatch(/^[\w-]{22}$/)
    expect(kinds).toEqual({
      login: ['get', 'set'],
      'bound read': ['get'],
      list: ['userEntries', 'getMany'],
      // Nothing to revoke by that handle: the index read alone.
      'revoke one': ['userEntries'],
      countUsers: ['countUsers'],
      'revoke all': ['userEntries', 'revokeUser'],
    })
  })

  it('touches with the TTL-only touch when the store has one', async () => {
    const { sessions, calls, clock } = setup({ touchInterval: 10 })
    const jar = new CookieJar()
    await roundTrip(sessions, jar, (s) => s.set('a', 1))
    clock.advance(10_000)
    calls.length = 0
    const { setCookies } = await roundTrip(sessions, jar, () => undefined)
    expect(calls.map((c) => c.method)).toEqual(['get', 'touch'])
    expect(setCookies).toHaveLength(1)
  })

  it('extends the deadline on an explicit touch() even within the touch interval', async () => {
    const { sessions, calls, clock } = setup()
    const jar = new CookieJar()
    const { session } = await roundTrip(sessions, jar, (s) => s.set('a', 1))
    clock.advance(1000)
    calls.length = 0
    const touched = await roundTrip(sessions, jar, (s) => s.touch())
    expect(calls.map((c) => c.method)).toEqual(['get', 'touch'])
    expect(touched.session.expiresAt).toBe(session.expiresAt + 1000)
  })

  it('writes nothing on a second commit of an unchanged session', async () => {
    const { sessions, calls } = setup()
    const s = await sessions.load(new Request('https://app.example/'))
    s.set('a', 1)
    await sessions.commit(s, new Response())
    calls.length = 0
    const again = await sessions.commit(s, new Response())
    expect(calls).toEqual([])
    expect(again.headers.getSetCookie()).toEqual([])
    // isNew describes the request: no stored session was found when it arrived.
    expect(s.isNew).toBe(true)
  })
})

describe('store failures', () => {
  const failing = (
    failOn: keyof ServerStore,
    error: Error = new Error('connection refused'),
  ): ServerStore => {
    const store = memoryStore()
    return new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === failOn) return async () => Promise.reject(error)
        return Reflect.get(target, prop, receiver)
      },
    })
  }

  it('rejects load with ERR_STORE, the original error as cause', async () => {
    const cause = new Error('connection refused')
    const healthy = setup()
    const jar = new CookieJar()
    await roundTrip(healthy.sessions, jar, (s) => s.set('a', 1))
    const sessions = createSessions({ store: failing('get', cause), secrets: SECRET })
    const error = await sessions.load(jar.request()).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(SessionError)
    expect(error).toMatchObject({ code: 'ERR_STORE', cause })
    expect((error as Error).message).toMatch(/memory session store failed to read: connection refused/)
  })

  it('rejects commit with ERR_STORE and adds no cookie', async () => {
    const sessions = createSessions({ store: failing('set'), secrets: SECRET })
    const s = await sessions.load(new Request('https://app.example/'))
    s.set('a', 1)
    const response = new Response()
    await expect(sessions.commit(s, response)).rejects.toMatchObject({ code: 'ERR_STORE' })
    expect(response.headers.getSetCookie()).toEqual([])
  })

  it('gives up on a store slower than storeTimeout, aborting its signal', async () => {
    let signal: AbortSignal | undefined
    const hanging: ServerStore = {
      ...memoryStore(),
      set: (_key, _record, _ttl, ctx) => {
        signal = ctx.signal
        return new Promise(() => {})
      },
    }
    const sessions = createSessions({ store: hanging, secrets: SECRET, storeTimeout: 50 })
    const s = await sessions.load(new Request('https://app.example/'))
    s.set('a', 1)
    const started = Date.now()
    const error = await sessions.commit(s, new Response()).catch((e: unknown) => e)
    expect(Date.now() - started).toBeLessThan(2000)
    expect(error).toMatchObject({ code: 'ERR_STORE', message: expect.stringMatching(/within 50 ms/) })
    expect(signal?.aborted).toBe(true)
  })

  it('says ERR_UNSUPPORTED when the store cannot count', async () => {
    const { count: _count, ...rest } = memoryStore()
    const sessions = createSessions({ store: rest as ServerStore, secrets: SECRET })
    await expect(sessions.count()).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' })
    await expect(createSessions({ store: cookieStore(), secrets: SECRET }).count()).rejects.toMatchObject({
      code: 'ERR_UNSUPPORTED',
    })
  })
})

describe('Session', () => {
  it('copies values in and out: mutating them does not change the session', async () => {
    const { sessions } = setup()
    const s = await sessions.load(new Request('https://app.example/'))
    const value = { list: [1] }
    s.set('v', value)
    value.list.push(2)
    const got = s.get('v') as { list: number[] }
    got.list.push(3)
    expect(s.get('v')).toEqual({ list: [1] })
    const all = s.all() as { v: { list: number[] } }
    all.v.list.push(4)
    expect(s.get('v')).toEqual({ list: [1] })
  })

  it('deletes on set(undefined), and has() sees only present keys', async () => {
    const { sessions } = setup()
    const s = await sessions.load(new Request('https://app.example/'))
    s.set('a', 1).set('a', undefined)
    expect(s.has('a')).toBe(false)
    expect(s.all()).toEqual({})
  })

  it('consumes a flash on its first get, even in the same request, but not on has() or all()', async () => {
    const { sessions } = setup()
    const s = await sessions.load(new Request('https://app.example/'))
    s.flash('notice', 'hi')
    expect(s.has('notice')).toBe(true)
    expect(s.all()).toEqual({ notice: 'hi' })
    expect(s.get('notice')).toBe('hi')
    expect(s.get('notice')).toBeUndefined()
  })

  it('throws ERR_DESTROYED for every write after destroy()', async () => {
    const { sessions } = setup()
    const s = await sessions.load(new Request('https://app.example/'))
    s.set('a', 1)
    s.destroy()
    expect(s.destroyed).toBe(true)
    expect(s.get('a')).toBeUndefined()
    for (const write of [
      () => s.set('a', 2),
      () => s.delete('a'),
      () => s.flash('a', 1),
      () => s.regenerate(),
      () => s.touch(),
    ]) {
      expect(write).toThrow(expect.objectContaining({ code: 'ERR_DESTROYED' }))
    }
  })

  it('regenerates with a new id at once, keeping only `keep`', async () => {
    const { sessions } = setup()
    const s = await sessions.load(new Request('https://app.example/'))
    s.set('a', 1).set('b', 2).flash('c', 3)
    const before = s.id
    s.regenerate({ keep: ['a', 'c'] })
    expect(s.id).not.toBe(before)
    expect(s.all()).toEqual({ a: 1, c: 3 })
    expect(s.get('c')).toBe(3)
    expect(s.has('c')).toBe(false)
  })

  it('adds Set-Cookie to a response whose headers are immutable by copying it', async () => {
    const { sessions } = setup()
    const s = await sessions.load(new Request('https://app.example/'))
    s.set('a', 1)
    const redirect = Response.redirect('https://app.example/next', 302)
    const committed = await sessions.commit(s, redirect)
    expect(committed.status).toBe(302)
    expect(committed.headers.get('location')).toBe('https://app.example/next')
    expect(committed.headers.getSetCookie()).toHaveLength(1)
  })
})
