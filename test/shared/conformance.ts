/**
 * @module The store conformance suite: what every store must do, seen through `createSessions` as a user sees it.
 * Uses only web APIs and vitest, so it runs in Node, workerd and Deno alike.
 *
 * ```ts
 * describeStoreConformance({ name: 'memory', createStore: () => memoryStore() })
 * ```
 */

import { createSessions, SessionError, type SessionStore, type SessionsOptions } from 'edge-session'
import { describe, expect, it } from 'vitest'
import { type CountingStore, countingStore, type StoreCall } from '../support/counting-store.ts'
import { CookieJar, manualClock } from '../support/jar.ts'
import { describeRecordAnswers } from './conformance-records.ts'
import { describeUserSessions } from './conformance-users.ts'

export interface ConformanceOptions {
  name: string
  /** Which kind of store `createStore` returns: server-only tests are registered for server stores alone. */
  kind: 'server' | 'cookie'
  /** A store with its own empty key space (a fresh prefix), for each test. */
  createStore: () => SessionStore | Promise<SessionStore>
  /** Passed to `load`, `commit` and `count` (Workers bindings). */
  env?: () => unknown
  /** The store keeps a TTL of about a second, so its own expiry can be watched in real time. */
  realTimeExpiry?: boolean
  /**
   * How patches to one session that overlap in time combine. `'merged'` (default): atomically, so concurrent
   * changes to different keys all persist. `'last-write-wins'` (Cloudflare KV: no transactions): only patches
   * that do not overlap are merged; the suite then checks that sequential commits of stale loads merge.
   */
  concurrentPatches?: 'merged' | 'last-write-wins'
  /**
   * The store keeps sessions per user (every store of this library does). False for a minimal store: the suite
   * then checks that listing, revoking and counting users reject with `ERR_UNSUPPORTED`.
   */
  userSessions?: boolean
  /**
   * Which runs of the suite to register (default both): as the store is, and behind the cookie cache (server
   * stores only). A store whose local runtime slows down as its state grows splits them over two test files.
   */
  runs?: ReadonlyArray<'plain' | 'cookieCache'>
}

const SECRET = 'conformance-secret-0123456789abcdefghijklmnop'
const OLD_SECRET = 'conformance-old-secret-0123456789abcdefghijk'
const IDLE = 600
const ABSOLUTE = 3600
const TOUCH = 60
/** The cookie cache's maxAge in the cache run: shorter than the touch interval. */
const CACHE_AGE = 30

interface Data {
  [key: string]: unknown
  count?: number
  user?: string
  a?: unknown
  b?: unknown
  notice?: string
}

/** Values that must come back exactly as they went in, whatever the store's encoding. */
export const TRICKY_VALUES: Record<string, unknown> = {
  string: 'hello',
  numericString: '1.5',
  jsonString: '{"a":1}',
  jsonArrayString: '[1,2]',
  trueString: 'true',
  nullString: 'null',
  quoted: '"quoted"',
  empty: '',
  unicode: 'żółć 🍣 \u2028 \u0000',
  integer: 42,
  negative: -7,
  float: 1.5,
  big: 2 ** 53 - 1,
  zero: 0,
  yes: true,
  no: false,
  nothing: null,
  array: [1, 'two', { three: 3 }, [null]],
  object: { nested: { deep: ['x', { y: 'z' }] }, n: 1 },
  emptyObject: {},
  emptyArray: [],
}

/** Registers the suite for one store. */
export function describeStoreConformance(options: ConformanceOptions): void {
  const env = () => options.env?.()

  // Server stores run the suite twice: as they are, and behind the cookie cache (a warm read makes no store call;
  // a change made by another device is seen within its maxAge, or at once by a `fresh` load).
  const runs = options.runs ?? ['plain', 'cookieCache']
  if (runs.includes('plain')) describeSuite(false)
  if (options.kind === 'server' && runs.includes('cookieCache')) describeSuite(true)

  function describeSuite(cache: boolean) {
    const CACHE: Partial<SessionsOptions> = cache ? { cookieCache: { maxAge: CACHE_AGE } } : {}
    /** For a load whose jar has not seen the responses of the commits it checks: the store's view, not a cache. */
    const FRESH = cache ? { fresh: true } : undefined
    async function setup(extra: Partial<SessionsOptions> = {}) {
      const inner = await options.createStore()
      expect(inner.kind ?? 'server').toBe(options.kind)
      const store = inner.kind === 'cookie' ? inner : countingStore(inner)
      const clock = manualClock()
      const sessions = createSessions<Data>({
        store,
        secrets: [SECRET],
        idleTimeout: IDLE,
        absoluteTimeout: ABSOLUTE,
        touchInterval: TOUCH,
        now: clock.now,
        ...CACHE,
        ...extra,
      })
      const calls: StoreCall[] = store.kind === 'cookie' ? [] : (store as CountingStore).calls
      /** One request: load, let `handle` work on the session, commit, update the jar. */
      async function visit<T>(
        jar: CookieJar,
        handle: (s: Awaited<ReturnType<typeof sessions.load>>) => T,
        load?: { fresh: boolean },
      ) {
        const session = await sessions.load(jar.request(), env(), load)
        const result = handle(session)
        const response = await sessions.commit(session, new Response('ok'))
        const setCookies = jar.update(response)
        return { session, result, response, setCookies }
      }
      return { store, inner, clock, sessions, calls, visit }
    }

    /** The Set-Cookie lines of the session's own cookies: all of them in the run without the cache. */
    const own = (lines: string[], name = 'sid') => lines.filter((line) => !line.startsWith(`${name}.cache=`))
    /** The Set-Cookie lines of the cache cookie (none in the run without it). */
    const cacheLines = (lines: string[], name = 'sid') =>
      lines.filter((line) => line.startsWith(`${name}.cache=`))

    const ctx = () => ({ env: env(), signal: new AbortController().signal })

    function describeServerStore() {
      it('passes the store a relative TTL that follows the nearer deadline', async () => {
        const { visit, calls, clock, inner } = await setup()
        const minTtl = inner.kind === 'cookie' ? 0 : (inner.minTtl ?? 0)
        const start = clock.now()
        const jar = new CookieJar()
        await visit(jar, (s) => s.set('a', 0))
        expect(calls.at(-1)).toMatchObject({ method: 'set', ttl: Math.max(IDLE * 1000, minTtl) })
        // Kept alive by a write every 300 s until 40 s before the absolute deadline.
        for (let t = 300; t < ABSOLUTE - 40; t += 300) {
          clock.set(start + t * 1000)
          await visit(jar, (s) => s.set('a', t))
          const nearer = Math.min(IDLE, ABSOLUTE - t) * 1000
          expect(calls.at(-1)).toMatchObject({ method: 'patch', ttl: Math.max(nearer, minTtl) })
        }
        clock.set(start + (ABSOLUTE - 40) * 1000)
        const last = await visit(jar, (s) => s.set('a', 'last'))
        expect(last.session.isNew).toBe(false)
        expect(calls.at(-1)).toMatchObject({ method: 'patch', ttl: Math.max(40_000, minTtl) })
        // The cookie follows the same deadline.
        expect(last.setCookies[0]).toMatch(/Max-Age=40(;|$)/)
      })

      it('never lets a stale write or a regenerate bring back a destroyed session', async () => {
        const { sessions, inner } = await setup()
        if (inner.kind === 'cookie') throw new Error('server stores only')
        const jar = new CookieJar()
        const s0 = await sessions.load(jar.request(), env())
        s0.set('user', 'ada')
        jar.update(await sessions.commit(s0, new Response()))
        const writer = await sessions.load(jar.request(), env())
        const regenerator = await sessions.load(jar.request(), env())
        const destroyer = await sessions.load(jar.request(), env())
        destroyer.destroy()
        await sessions.commit(destroyer, new Response())
        writer.set('a', 'late')
        const late = await sessions.commit(writer, new Response())
        // Ended, with no cookie of their own: the destroying response clears it, and a clearing sent from a request
        // that lost a race could overwrite a regenerated session's new cookie in the browser. The cache cookie
        // is cleared: it would keep opening the ended session until its maxAge.
        const endedLines = cache ? [expect.stringMatching(/^sid\.cache=;.*Max-Age=0/)] : []
        expect(late.headers.getSetCookie()).toEqual(endedLines)
        expect(writer.destroyed).toBe(true)
        regenerator.regenerate()
        const regenerated = await sessions.commit(regenerator, new Response())
        expect(regenerated.headers.getSetCookie()).toEqual(endedLines)
        expect(regenerator.destroyed).toBe(true)
        expect(await inner.get(await storageKey(s0.id), ctx())).toBeNull()
        expect(await inner.get(await storageKey(regenerator.id), ctx())).toBeNull()
        expect((await sessions.load(jar.request(), env(), FRESH)).isNew).toBe(true)
        if (inner.count) expect(await sessions.count(env())).toBe(0)
      })

      if ((options.concurrentPatches ?? 'merged') === 'merged') {
        it('merges concurrent changes to different keys of one session', async () => {
          const { sessions } = await setup()
          const jar = new CookieJar()
          const s0 = await sessions.load(jar.request(), env())
          s0.set('user', 'ada')
          jar.update(await sessions.commit(s0, new Response()))
          const loaded = await Promise.all(
            Array.from({ length: 10 }, () => sessions.load(jar.request(), env())),
          )
          loaded.forEach((s, i) => {
            s.set(`k${i}`, i)
          })
          await Promise.all(loaded.map((s) => sessions.commit(s, new Response())))
          const after = await sessions.load(jar.request(), env(), FRESH)
          const expected: Record<string, unknown> = { user: 'ada' }
          for (let i = 0; i < 10; i++) expected[`k${i}`] = i
          expect(after.all()).toEqual(expected)
        })
      } else {
        it('merges changes to different keys committed one after the other, even from stale loads', async () => {
          const { sessions } = await setup()
          const jar = new CookieJar()
          const s0 = await sessions.load(jar.request(), env())
          s0.set('user', 'ada')
          jar.update(await sessions.commit(s0, new Response()))
          const first = await sessions.load(jar.request(), env())
          const second = await sessions.load(jar.request(), env())
          first.set('a', 1)
          second.set('b', 2)
          await sessions.commit(first, new Response())
          await sessions.commit(second, new Response())
          expect((await sessions.load(jar.request(), env(), FRESH)).all()).toEqual({
            user: 'ada',
            a: 1,
            b: 2,
          })
        })
      }

      it('keeps a flash set by one request when another, loaded before it, changes another key or touches', async () => {
        const { sessions, clock } = await setup()
        const jar = new CookieJar()
        const s0 = await sessions.load(jar.request(), env())
        s0.set('user', 'ada')
        jar.update(await sessions.commit(s0, new Response()))
        clock.advance((TOUCH + 1) * 1000)
        // Both load before either commits: the writer and the toucher hold a view without the flash.
        const flasher = await sessions.load(jar.request(), env())
        const writer = await sessions.load(jar.request(), env())
        const toucher = await sessions.load(jar.request(), env())
        flasher.flash('notice', 'Saved!')
        await sessions.commit(flasher, new Response())
        writer.set('a', 1)
        await sessions.commit(writer, new Response())
        await sessions.commit(toucher, new Response())
        const reader = await sessions.load(jar.request(), env())
        expect(reader.get('notice')).toBe('Saved!')
        await sessions.commit(reader, new Response())
        const after = await sessions.load(jar.request(), env())
        expect(after.has('notice')).toBe(false)
        expect(after.all()).toEqual({ user: 'ada', a: 1 })
      })

      it('lets the last committed write to one key win', async () => {
        const { sessions } = await setup()
        const jar = new CookieJar()
        const s0 = await sessions.load(jar.request(), env())
        s0.set('a', 0)
        jar.update(await sessions.commit(s0, new Response()))
        const first = await sessions.load(jar.request(), env())
        const second = await sessions.load(jar.request(), env())
        second.set('a', 'second')
        first.set('a', 'first')
        await sessions.commit(second, new Response())
        await sessions.commit(first, new Response())
        expect((await sessions.load(jar.request(), env(), FRESH)).get('a')).toBe('first')
      })

      it('stores records under the hashed id, never the id itself', async () => {
        const { visit, calls } = await setup()
        const jar = new CookieJar()
        const { session } = await visit(jar, (s) => s.set('a', 1))
        const key = await storageKey(session.id)
        expect(calls.at(-1)).toMatchObject({ method: 'set', key })
        expect(key).not.toContain(session.id)
      })
    }

    function tests() {
      it('round-trips every kind of JSON value exactly', async () => {
        const { visit, calls } = await setup()
        const jar = new CookieJar()
        const first = await visit(jar, (s) => {
          for (const [key, value] of Object.entries(TRICKY_VALUES)) s.set(key, value)
          return s.id
        })
        expect(own(first.setCookies)).toHaveLength(1)
        // With the cache, the read below is answered by the cache cookie: the values round-trip through its seal.
        expect(cacheLines(first.setCookies)).toHaveLength(cache ? 1 : 0)
        calls.length = 0
        const second = await visit(jar, (s) => s.all())
        expect(calls.length).toBe(cache ? 0 : options.kind === 'server' ? 1 : 0)
        expect(second.session.isNew).toBe(false)
        expect(second.session.id).toBe(first.result)
        expect(second.result).toEqual(TRICKY_VALUES)
        for (const [key, value] of Object.entries(TRICKY_VALUES))
          expect(second.session.get(key)).toStrictEqual(value)
      })

      it('keeps keys that look special as plain data', async () => {
        const { visit, calls } = await setup()
        const jar = new CookieJar()
        const keys = ['__proto__', 'constructor', 'toString', 'a:b', 'x*y', 'with space', 'ключ', '']
        await visit(jar, (s) => {
          for (const key of keys) s.set(key, `value of ${key}`)
        })
        calls.length = 0
        const { session } = await visit(jar, () => undefined)
        // With the cache: read from its seal, no store call.
        if (cache) expect(calls).toEqual([])
        for (const key of keys) expect(session.get(key)).toBe(`value of ${key}`)
        expect(Object.getPrototypeOf(session.all())).toBe(Object.prototype)
        expect(({} as Record<string, unknown>).polluted).toBeUndefined()
      })

      it('round-trips every string key on the patch path, and all() holds exactly the keys set', async () => {
        const { visit } = await setup()
        const jar = new CookieJar()
        await visit(jar, (s) => s.set('user', 'ada'))
        const keys = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'a.b', 'd:x', '']
        // The patch path: the record exists, only these keys change. Objects as values, so a store that merges
        // `__proto__` into its record as a prototype (or spreads its fields) is caught.
        await visit(jar, (s) => {
          for (const key of keys) s.set(key, { of: key, user: 'mallory' })
        })
        const { session } = await visit(jar, () => undefined)
        const expected: Record<string, unknown> = Object.create(null)
        expected.user = 'ada'
        for (const key of keys) expected[key] = { of: key, user: 'mallory' }
        const all = session.all()
        expect(Object.keys(all).sort()).toEqual(Object.keys(expected).sort())
        for (const key of Object.keys(expected)) {
          expect(Object.hasOwn(all, key)).toBe(true)
          expect((all as Record<string, unknown>)[key]).toEqual(expected[key])
          expect(session.get(key)).toEqual(expected[key])
        }
        expect(Object.getPrototypeOf(all)).toBe(Object.prototype)
        // Deleting them on the patch path leaves exactly the rest.
        await visit(jar, (s) => {
          for (const key of keys) s.delete(key)
        })
        const after = await visit(jar, (s) => s.all())
        expect(after.result).toEqual({ user: 'ada' })
        expect(Object.keys(after.result)).toEqual(['user'])
      })

      it('makes no store call and sets no cookie when there is no cookie and nothing is set', async () => {
        const { visit, calls } = await setup()
        const jar = new CookieJar()
        const { session, setCookies } = await visit(jar, (s) => s.get('count'))
        expect(session.isNew).toBe(true)
        expect(setCookies).toEqual([])
        expect(calls).toEqual([])
      })

      it('updates and deletes keys, and does not rewrite an unchanged session', async () => {
        const { visit, calls, clock } = await setup()
        const jar = new CookieJar()
        await visit(jar, (s) => s.set('a', 1).set('b', 2))
        clock.advance(1000)
        await visit(jar, (s) => s.set('a', 10).delete('b'))
        clock.advance(1000)
        calls.length = 0
        // With the cache: warm when the store answered the patch with its record, else cold (a read, and a cache).
        const warm = cache && jar.get('sid.cache') !== undefined
        const { session, setCookies } = await visit(jar, (s) => s.all())
        expect(session.all()).toEqual({ a: 10 })
        expect(session.has('b')).toBe(false)
        // Read only, within the touch interval: nothing written, no cookie (but a cache issued by a cold read).
        expect(own(setCookies)).toEqual([])
        expect(cacheLines(setCookies)).toHaveLength(cache && !warm ? 1 : 0)
        expect(calls.map((c) => c.method)).toEqual(options.kind === 'server' && !warm ? ['get'] : [])
      })

      it('ends a session after idleTimeout without requests, on the sessions clock', async () => {
        const { visit, clock } = await setup()
        const jar = new CookieJar()
        const first = await visit(jar, (s) => s.set('user', 'ada'))
        clock.advance(IDLE * 1000 - 1)
        const alive = await visit(jar, (s) => s.get('user'))
        expect(alive.result).toBe('ada')
        expect(alive.session.id).toBe(first.session.id)
        // The read above slid the deadline (it was past the touch interval): another idle period is allowed.
        clock.advance(IDLE * 1000 - 1)
        expect((await visit(jar, (s) => s.get('user'))).result).toBe('ada')
        clock.advance(IDLE * 1000)
        const expired = await visit(jar, (s) => s.get('user'))
        expect(expired.result).toBeUndefined()
        expect(expired.session.isNew).toBe(true)
        expect(expired.session.id).not.toBe(first.session.id)
      })

      it('ends a session at absoluteTimeout whatever the activity', async () => {
        const { visit, clock } = await setup()
        const jar = new CookieJar()
        await visit(jar, (s) => s.set('count', 0))
        let last = 0
        for (let elapsed = 0; elapsed < ABSOLUTE - 300; elapsed += 300) {
          clock.advance(300_000)
          const { result } = await visit(jar, (s) => {
            const count = (s.get('count') ?? -1) + 1
            s.set('count', count)
            return count
          })
          last = result
        }
        expect(last).toBe(11)
        clock.advance(300_000)
        const { session } = await visit(jar, (s) => s.get('count'))
        expect(session.isNew).toBe(true)
        expect(session.get('count')).toBeUndefined()
      })

      it('extends an unchanged session at most once per touchInterval, and resends the cookie when it does', async () => {
        const { visit, clock, calls, inner } = await setup()
        const jar = new CookieJar()
        const { session: created } = await visit(jar, (s) => s.set('count', 1))
        const expiresAt = created.expiresAt
        clock.advance(TOUCH * 1000 - 1)
        calls.length = 0
        const quiet = await visit(jar, () => undefined)
        expect(own(quiet.setCookies)).toEqual([])
        // The cache (maxAge below the touch interval) had expired: the store was read and a new cache issued.
        expect(cacheLines(quiet.setCookies)).toHaveLength(cache ? 1 : 0)
        expect(quiet.session.expiresAt).toBe(expiresAt)
        expect(calls.some((c) => c.method !== 'get')).toBe(false)
        clock.advance(1)
        calls.length = 0
        const touched = await visit(jar, () => undefined)
        // Warm cache, touch due: one call, the touch.
        if (cache && inner.kind !== 'cookie')
          expect(calls.map((c) => c.method)).toEqual([inner.touch ? 'touch' : 'patch'])
        expect(own(touched.setCookies)).toHaveLength(1)
        expect(own(touched.setCookies)[0]).toMatch(new RegExp(`Max-Age=${IDLE}(;|$)`))
        expect(touched.session.expiresAt).toBe(expiresAt + TOUCH * 1000)
      })

      it('reads a flash value once, in the next request', async () => {
        const { visit } = await setup()
        const jar = new CookieJar()
        await visit(jar, (s) => s.set('user', 'ada').flash('notice', 'Saved!'))
        expect((await visit(jar, (s) => s.get('notice'))).result).toBe('Saved!')
        const after = await visit(jar, (s) => [s.get('notice'), s.has('notice'), s.get('user')])
        expect(after.result).toEqual([undefined, false, 'ada'])
      })

      it('keeps the absolute deadline across a regenerate, and starts a new one only with renew', async () => {
        const { visit, clock } = await setup()
        const jar = new CookieJar()
        const start = clock.now()
        const created = await visit(jar, (s) => s.set('user', 'ada'))
        expect(created.session.createdAt).toBe(start)
        // Rotate the id every 500 s: the session still ends at the absolute deadline counted from its creation.
        let t = 0
        for (t = 500; t < ABSOLUTE; t += 500) {
          clock.set(start + t * 1000)
          const { session } = await visit(jar, (s) => {
            expect(s.isNew).toBe(false)
            s.regenerate()
          })
          expect(session.createdAt).toBe(start)
          expect(session.expiresAt).toBeLessThanOrEqual(start + ABSOLUTE * 1000)
        }
        clock.set(start + ABSOLUTE * 1000)
        const ended = await visit(jar, (s) => s.get('user'))
        expect(ended.session.isNew).toBe(true)
        expect(ended.result).toBeUndefined()

        // A login renews: the new lifetime starts at that commit.
        const login = new CookieJar()
        const begun = clock.now()
        await visit(login, (s) => s.set('user', 'bob'))
        clock.set(begun + 500 * 1000)
        const renewed = await visit(login, (s) => s.regenerate({ renew: true }))
        expect(renewed.session.createdAt).toBe(begun + 500 * 1000)
        for (t = 1000; t <= ABSOLUTE + 100; t += 500) {
          clock.set(begun + t * 1000)
          await visit(login, (s) => s.set('seen', t))
        }
        // Past the first lifetime's absolute deadline, inside the renewed one.
        expect((await visit(login, (s) => s.get('user'))).result).toBe('bob')
        clock.set(begun + (ABSOLUTE + 500) * 1000)
        expect((await visit(login, (s) => s.get('user'))).session.isNew).toBe(true)
      })

      it('regenerates: new id, data kept (or only `keep`), new cookie', async () => {
        const { visit } = await setup()
        const jar = new CookieJar()
        const first = await visit(jar, (s) => s.set('a', 1).set('b', 2))
        const oldJar = jar.clone()
        const regenerated = await visit(jar, (s) => s.regenerate({ keep: ['a'] }).set('user', 'ada'))
        expect(regenerated.session.id).not.toBe(first.session.id)
        expect(own(regenerated.setCookies)).toHaveLength(1)
        expect(cacheLines(regenerated.setCookies)).toHaveLength(cache ? 1 : 0)
        const after = await visit(jar, (s) => s.all())
        expect(after.session.id).toBe(regenerated.session.id)
        expect(after.result).toEqual({ a: 1, user: 'ada' })
        // With the cache, the old cookies' copy is trusted until its maxAge (the stated bound): read the store.
        const old = await visit(oldJar, (s) => s.all(), FRESH)
        if (options.kind === 'cookie') {
          // Documented limit of a stateless cookie: an earlier copy still opens the old session.
          expect(old.result).toEqual({ a: 1, b: 2 })
        } else {
          expect(old.session.isNew).toBe(true)
          expect(old.result).toEqual({})
        }
      })

      it('destroys: cookie cleared, session gone, later writes throw ERR_DESTROYED', async () => {
        const { visit, inner } = await setup()
        const jar = new CookieJar()
        const created = await visit(jar, (s) => s.set('user', 'ada'))
        const copy = jar.clone()
        const destroyed = await visit(jar, (s) => {
          s.destroy()
          return (() => {
            try {
              s.set('user', 'eve')
            } catch (error) {
              return error
            }
          })()
        })
        expect(destroyed.result).toBeInstanceOf(SessionError)
        expect((destroyed.result as SessionError).code).toBe('ERR_DESTROYED')
        expect(own(destroyed.setCookies)).toHaveLength(1)
        expect(own(destroyed.setCookies)[0]).toMatch(/Max-Age=0/)
        expect(cacheLines(destroyed.setCookies)).toEqual(cache ? [expect.stringMatching(/Max-Age=0/)] : [])
        expect(jar.cookies.size).toBe(0)
        const after = await visit(jar, (s) => s.get('user'))
        expect(after.session.isNew).toBe(true)
        expect(after.session.id).not.toBe(created.session.id)
        const reused = await visit(copy, (s) => s.get('user'), FRESH)
        // A stateless cookie cannot be revoked: a copy taken before destroy() still opens the session (documented).
        expect(reused.result).toBe(inner.kind === 'cookie' ? 'ada' : undefined)
      })

      it('gives a fresh session, never an error, for forged, tampered or garbage cookies', async () => {
        const { visit, sessions } = await setup()
        const jar = new CookieJar()
        const created = await visit(jar, (s) => s.set('user', 'ada'))
        const name = sessions.options.cookie.name
        const good = jar.get(name) ?? [...jar.cookies.values()].join('')
        const variants = [
          '',
          'x',
          '.',
          good.slice(0, -1),
          `${good}A`,
          good.slice(0, -1) + (good.endsWith('A') ? 'B' : 'A'),
          good.split('').reverse().join(''),
          '%ZZ%',
          'a'.repeat(5000),
          `${'A'.repeat(43)}.${'A'.repeat(43)}`,
          'Fe26.2**********',
          'Fe26.2*a*b*c*d**e*f',
          '"quoted"',
          '%00%01',
        ]
        for (const value of variants) {
          const forged = new CookieJar()
          forged.cookies.set(name, value)
          const { session } = await visit(forged, (s) => s.get('user'))
          expect(session.isNew).toBe(true)
          expect(session.get('user')).toBeUndefined()
          expect(session.id).not.toBe(created.session.id)
        }
      })

      it('opens the live session whatever cookies of its name come before it, and clears nothing then', async () => {
        const { visit, sessions } = await setup()
        const name = sessions.options.cookie.name
        const jar = new CookieJar()
        await visit(jar, (s) => s.set('user', 'ada'))
        // A signed id that was a session once, its record gone since (a sealed copy cannot be revoked: not here).
        const old = new CookieJar()
        await visit(old, (s) => s.set('user', 'old'))
        const oldPairs = options.kind === 'server' ? [...old.cookies] : []
        await visit(old.clone(), (s) => s.destroy())
        const forged = ['garbage', `${'A'.repeat(43)}.${'A'.repeat(43)}`, 'Fe26.2**x', '"quoted"', '']
        const junk: Array<[string, string]> = [
          ...forged.map((value): [string, string] => [name, value]),
          ...oldPairs,
          [name, forged[1] as string],
          [name, forged[1] as string],
        ]
        const header = [...junk, ...jar.cookies].map(([key, value]) => `${key}=${value}`).join('; ')
        const session = await sessions.load(
          new Request('https://app.example/', { headers: { cookie: header } }),
          env(),
        )
        expect(session.isNew).toBe(false)
        expect(session.get('user')).toBe('ada')
        const response = await sessions.commit(session, new Response())
        // With the cache: two cache cookies (the old session's, this one's) are not guessed at; the store is read
        // and one cache issued.
        expect(own(response.headers.getSetCookie())).toEqual([])
        expect(cacheLines(response.headers.getSetCookie())).toHaveLength(cache ? 1 : 0)
      })

      it('answers a flood of duplicate cookies with one clearing at most, never echoing names it does not own', async () => {
        const { sessions } = await setup()
        const name = sessions.options.cookie.name
        const pairs = Array.from(
          { length: 600 },
          (_, i) => `${name}=forged${i}; ${name}.${i}=x; ${name}x${i}=y`,
        )
        const session = await sessions.load(
          new Request('https://app.example/', { headers: { cookie: pairs.join('; ') } }),
          env(),
        )
        expect(session.isNew).toBe(true)
        const setCookies = (await sessions.commit(session, new Response())).headers.getSetCookie()
        const names = setCookies.map((line) => line.slice(0, line.indexOf('=')))
        expect(new Set(names).size).toBe(names.length)
        for (const cleared of names) expect(cleared).toMatch(new RegExp(`^${name}(\\.[0-4])?$`))
        expect(setCookies.length).toBeLessThanOrEqual(options.kind === 'cookie' ? 6 : 1)
      })

      it('accepts a cookie issued under an older secret and reissues it under the first', async () => {
        const inner = await options.createStore()
        const clock = manualClock()
        const common = {
          store: inner,
          idleTimeout: IDLE,
          absoluteTimeout: ABSOLUTE,
          touchInterval: TOUCH,
          now: clock.now,
          ...CACHE,
        }
        const before = createSessions<Data>({ ...common, secrets: [OLD_SECRET] })
        const after = createSessions<Data>({ ...common, secrets: [SECRET, OLD_SECRET] })
        const onlyNew = createSessions<Data>({ ...common, secrets: [SECRET] })
        const jar = new CookieJar()
        const s1 = await before.load(jar.request(), env())
        s1.set('user', 'ada')
        jar.update(await before.commit(s1, new Response()))
        const oldCookie = jar.header()
        const s2 = await after.load(jar.request(), env())
        expect(s2.get('user')).toBe('ada')
        const reissued = jar.update(await after.commit(s2, new Response()))
        expect(reissued.length).toBeGreaterThan(0)
        // The cache, sealed under the old secret, is sealed again under the first.
        expect(cacheLines(reissued)).toHaveLength(cache ? 1 : 0)
        expect(jar.header()).not.toBe(oldCookie)
        const s3 = await onlyNew.load(jar.request(), env())
        expect(s3.get('user')).toBe('ada')
      })

      it('rejects a value that is not JSON data with ERR_SERIALIZE and writes nothing', async () => {
        const { visit, calls } = await setup()
        const jar = new CookieJar()
        const bad: unknown[] = [
          () => 1,
          Symbol('s'),
          10n,
          Number.NaN,
          Infinity,
          new Date(),
          new Map(),
          { f: () => 1 },
        ]
        const cyclic: Record<string, unknown> = {}
        cyclic.self = cyclic
        bad.push(cyclic)
        const { result, setCookies } = await visit(jar, (s) =>
          bad.map((value) => {
            try {
              s.set('a', value)
              return null
            } catch (error) {
              return (error as SessionError).code
            }
          }),
        )
        expect(result).toEqual(bad.map(() => 'ERR_SERIALIZE'))
        expect(setCookies).toEqual([])
        expect(calls).toEqual([])
      })

      it('counts live sessions where the store can, and says ERR_UNSUPPORTED where it cannot', async () => {
        const { visit, sessions, inner } = await setup()
        const jars = [new CookieJar(), new CookieJar(), new CookieJar()]
        for (const jar of jars) await visit(jar, (s) => s.set('user', 'u'))
        if (inner.kind !== 'cookie' && inner.count) {
          expect(await sessions.count(env())).toBe(3)
          await visit(jars[0] as CookieJar, (s) => s.destroy())
          expect(await sessions.count(env())).toBe(2)
        } else {
          await expect(sessions.count(env())).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' })
        }
      })

      if (options.kind === 'server') describeServerStore()
      describeUserSessions({
        kind: options.kind,
        createStore: options.createStore,
        env,
        supported: options.userSessions ?? true,
        ...(cache ? { cookieCache: { maxAge: CACHE_AGE } } : {}),
      })
      // Store calls alone: once is enough.
      if (!cache) describeRecordAnswers(options)

      if (options.realTimeExpiry) {
        it('forgets a record once its TTL has passed, by the store itself', async () => {
          const { sessions, inner } = await setup({ idleTimeout: 1, touchInterval: 0, now: Date.now })
          if (inner.kind === 'cookie') throw new Error('server stores only')
          const jar = new CookieJar()
          const s = await sessions.load(jar.request(), env())
          s.set('user', 'ada')
          jar.update(await sessions.commit(s, new Response()))
          const key = await storageKey(s.id)
          expect(await inner.get(key, ctx())).not.toBeNull()
          await new Promise((resolve) => setTimeout(resolve, 1300))
          expect(await inner.get(key, ctx())).toBeNull()
          if (inner.count) expect(await sessions.count(env())).toBe(0)
        })
      }
    }
    // Nested, so the cache run shares the suite's prefix: `store conformance: <name> > with cookieCache > ...`.
    describe(`store conformance: ${options.name}`, () => {
      if (cache) describe('with cookieCache', tests)
      else tests()
    })
  }
}

/** `base64url(SHA-256(id))`, computed independently of the library. */
export async function storageKey(id: string): Promise<string> {
  const data = new TextEncoder().encode(id)
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', data))
  let binary = ''
  for (const byte of digest) binary += String.fromCharCode(byte)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}
