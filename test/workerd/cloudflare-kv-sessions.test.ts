/** @module createSessions over the Cloudflare KV store inside workerd: KV's limits as a user of sessions meets them. */
import { createSessions, isSessionError, type SessionsOptions } from 'edge-session'
import { cloudflareKvStore, type KvNamespace } from 'edge-session/stores/cloudflare-kv'
import { describe, expect, it } from 'vitest'
import { CookieJar, manualClock } from '../support/jar.ts'
import { kv } from './bindings.ts'

const SECRET = 'kv-sessions-test-secret-0123456789abcdef'

/** `kv` seen through a log of its operations and writes; reads take `slowReadsMs` longer once that is set. */
function watched() {
  const ops: string[] = []
  const writes: { key: string; value: string; expirationTtl: number }[] = []
  const control = { slowReadsMs: 0 }
  const namespace: KvNamespace = {
    get: async (key, getOptions) => {
      ops.push('get')
      if (control.slowReadsMs) await new Promise((resolve) => setTimeout(resolve, control.slowReadsMs))
      return kv.get(key, getOptions)
    },
    put: (key, value, putOptions) => {
      ops.push('put')
      writes.push({ key, value, expirationTtl: putOptions.expirationTtl })
      return kv.put(key, value, putOptions)
    },
    delete: (key) => {
      ops.push('delete')
      return kv.delete(key)
    },
    list: (listOptions) => {
      ops.push('list')
      return kv.list(listOptions)
    },
  }
  return { namespace, writes, control, ops }
}

/**
 * `kv`, except that once `hold()` is called the next put waits until `release()`: `reached` resolves when it is
 * waiting, after the read the store made before it. The request stays open between its read and its write.
 */
function heldWrites() {
  let gate: { reached: () => void; released: Promise<void> } | undefined
  let release: () => void = () => {}
  let reached: Promise<void> = Promise.resolve()
  const namespace: KvNamespace = {
    get: (key, options) => kv.get(key, options),
    put: async (key, value, options) => {
      const held = gate
      gate = undefined
      if (held) {
        held.reached()
        await held.released
      }
      return kv.put(key, value, options)
    },
    delete: (key) => kv.delete(key),
    list: (options) => kv.list(options),
  }
  return {
    namespace,
    hold() {
      let signal: () => void = () => {}
      reached = new Promise<void>((resolve) => {
        signal = resolve
      })
      gate = { reached: signal, released: new Promise<void>((resolve) => (release = resolve)) }
    },
    get reached() {
      return reached
    },
    release: () => release(),
  }
}

/** `kv` as another location sees it: reads answered from a cache filled by `warm`, as KV's edge cache does. */
function staleLocation() {
  const cache = new Map<string, string | null>()
  const namespace: KvNamespace = {
    get: async (key, options) => (cache.has(key) ? (cache.get(key) ?? null) : kv.get(key, options)),
    put: (key, value, options) => kv.put(key, value, options),
    delete: (key) => kv.delete(key),
    list: (options) => kv.list(options),
  }
  return {
    namespace,
    /** Caches every value now under `prefix`, as a location that has just read them. */
    async warm(prefix: string) {
      for (const { name } of (await kv.list({ prefix })).keys as { name: string }[])
        cache.set(name, await kv.get(name, { type: 'text' }))
    },
  }
}

type Env = { SESSIONS: KvNamespace }

function setup(extra: Partial<SessionsOptions> = {}) {
  const clock = manualClock()
  const prefix = `s-${crypto.randomUUID()}:`
  const sessions = createSessions<{ user?: string; a?: number; big?: string }>({
    store: cloudflareKvStore({ namespace: (env: Env) => env.SESSIONS, prefix }),
    secrets: [SECRET],
    idleTimeout: 600,
    now: clock.now,
    ...extra,
  })
  return { sessions, clock, prefix }
}

describe('sessions over Cloudflare KV', () => {
  it('refuses at createSessions an idleTimeout that KV’s touch floor cannot keep alive', () => {
    const refused = (extra: Partial<SessionsOptions>) => {
      try {
        setup(extra)
      } catch (error) {
        return isSessionError(error, 'ERR_CONFIG') ? error.message : `not ERR_CONFIG: ${String(error)}`
      }
      return 'accepted'
    }
    // Touches come at most once a minute: with idleTimeout 60 a user who only reads is logged out at 60 s.
    expect(refused({ idleTimeout: 60, touchInterval: 10 })).toMatch(
      /idleTimeout must be at least 120 seconds/,
    )
    expect(refused({ idleTimeout: 119, touchInterval: 10 })).toMatch(/at least 120 seconds/)
    expect(refused({ idleTimeout: 120, touchInterval: 10 })).toBe('accepted')
    expect(refused({ idleTimeout: 1_199, touchInterval: 1_140 })).toMatch(/at least 1200 seconds/)
    expect(refused({ idleTimeout: 1_200, touchInterval: 1_140 })).toBe('accepted')
  })

  it('keeps a reader signed in at the smallest idleTimeout it accepts, coming back just before each touch is due', async () => {
    const { sessions, clock } = setup({ idleTimeout: 120, touchInterval: 0 })
    const env: Env = { SESSIONS: kv }
    const jar = new CookieJar()
    const created = await sessions.load(jar.request(), env)
    created.set('user', 'ada')
    jar.update(await sessions.commit(created, new Response()))
    // Every 59.999 s: each second request is past the 60 s floor and touches, the other finds nothing to do.
    for (let i = 0; i < 10; i++) {
      clock.advance(59_999)
      const s = await sessions.load(jar.request(), env)
      expect(s.isNew).toBe(false)
      expect(s.get('user')).toBe('ada')
      jar.update(await sessions.commit(s, new Response()))
    }
  })

  it('touches an unchanged session by rewriting it, at most once a minute whatever touchInterval says', async () => {
    const { sessions, clock } = setup({ touchInterval: 10 })
    const { namespace, writes } = watched()
    const env: Env = { SESSIONS: namespace }
    const jar = new CookieJar()
    const created = await sessions.load(jar.request(), env)
    created.set('user', 'ada')
    jar.update(await sessions.commit(created, new Response()))
    expect(writes).toHaveLength(1)

    // 30 s later: past touchInterval, but KV takes a touch once a minute only.
    clock.advance(30_000)
    const quiet = await sessions.load(jar.request(), env)
    expect(jar.update(await sessions.commit(quiet, new Response()))).toEqual([])
    expect(writes).toHaveLength(1)

    clock.advance(30_000)
    const touched = await sessions.load(jar.request(), env)
    const setCookies = jar.update(await sessions.commit(touched, new Response()))
    expect(setCookies).toHaveLength(1)
    expect(setCookies[0]).toMatch(/Max-Age=600(;|$)/)
    // The touch rewrote the whole record, its data intact, with the slid deadline and a fresh KV TTL.
    expect(writes).toHaveLength(2)
    const rewritten = JSON.parse(writes[1]?.value ?? 'null')
    expect(rewritten.data).toEqual({ user: 'ada' })
    expect(rewritten.meta.expiresAt).toBe(clock.now() + 600_000)
    expect(writes[1]?.expirationTtl).toBe(600)
  })

  it('costs KV these operations per request', async () => {
    const { sessions, clock } = setup()
    const { namespace, ops } = watched()
    const env: Env = { SESSIONS: namespace }
    const jar = new CookieJar()
    /** The KV operations of one request that runs `handle` on its session. */
    async function request(handle: (s: Awaited<ReturnType<typeof sessions.load>>) => void) {
      ops.length = 0
      const s = await sessions.load(jar.request(), env)
      handle(s)
      jar.update(await sessions.commit(s, new Response()))
      clock.advance(1_000)
      return [...ops]
    }

    expect(await request(() => {})).toEqual([])
    expect(await request((s) => s.set('a', 1))).toEqual(['put'])
    expect(await request((s) => s.get('a'))).toEqual(['get'])
    // Load, then the fresh re-read of the patch, then the write.
    expect(await request((s) => s.set('a', 2))).toEqual(['get', 'get', 'put'])
    // Load, the check that the old record still exists, then the new record and the old one's deletion at once.
    expect((await request((s) => s.regenerate())).sort()).toEqual(['delete', 'get', 'get', 'put'])
    expect(await request((s) => s.destroy())).toEqual(['get', 'delete'])
    ops.length = 0
    await sessions.count(env)
    expect(ops).toEqual(['list'])
  })

  it('reports a failing KV as ERR_STORE, with the KV error as cause', async () => {
    const { sessions } = setup()
    const jar = new CookieJar()
    const s = await sessions.load(jar.request(), { SESSIONS: kv })
    s.set('user', 'ada')
    jar.update(await sessions.commit(s, new Response()))

    const failure = new Error('KV GET failed: 500 Internal Server Error')
    const failing: KvNamespace = { ...watched().namespace, get: () => Promise.reject(failure) }
    const loading = sessions.load(jar.request(), { SESSIONS: failing })
    await expect(loading).rejects.toSatisfy((error) => isSessionError(error, 'ERR_STORE'))
    await expect(loading).rejects.toHaveProperty('cause', failure)
  })

  it('gives up on a KV slower than storeTimeout, and its late write never lands', async () => {
    const { sessions } = setup({ storeTimeout: 100 })
    const { namespace, writes, control } = watched()
    const env: Env = { SESSIONS: namespace }
    const jar = new CookieJar()
    const s = await sessions.load(jar.request(), env)
    s.set('a', 1)
    jar.update(await sessions.commit(s, new Response()))

    const loaded = await sessions.load(jar.request(), env)
    loaded.set('a', 2)
    // The patch re-reads before writing: that read now outlasts storeTimeout.
    control.slowReadsMs = 300
    const committing = sessions.commit(loaded, new Response())
    await expect(committing).rejects.toSatisfy((error) => isSessionError(error, 'ERR_STORE'))
    await new Promise((resolve) => setTimeout(resolve, 400))
    expect(writes).toHaveLength(1)
    control.slowReadsMs = 0
    expect((await sessions.load(jar.request(), env)).get('a')).toBe(1)
  })

  // KV has no conditional write: what a logout racing another request of the same session does, measured.
  for (const kind of ['a change', 'a touch'] as const) {
    it(`undoes a logout that lands while ${kind} is between its read and its write (measured: KV has no conditional write)`, async () => {
      const { sessions, clock, prefix } = setup()
      const held = heldWrites()
      const jar = new CookieJar()
      const s = await sessions.load(jar.request(), { SESSIONS: kv })
      s.set('user', 'ada')
      jar.update(await sessions.commit(s, new Response()))
      const copy = jar.clone()
      clock.advance(120_000)

      // The other request loads, re-reads at commit, and is held there, before its write.
      const other = await sessions.load(jar.request(), { SESSIONS: held.namespace })
      if (kind === 'a change') other.set('a', 1)
      held.hold()
      const committing = sessions.commit(other, new Response())
      await held.reached
      const logout = await sessions.load(jar.request(), { SESSIONS: kv })
      logout.destroy()
      jar.update(await sessions.commit(logout, new Response()))
      expect(jar.cookies.size).toBe(0)
      expect((await kv.list({ prefix })).keys).toEqual([])

      held.release()
      await committing
      // The logged-out session is back, with a full idle lifetime from the late write.
      const back = await sessions.load(copy.request(), { SESSIONS: kv })
      expect(back.isNew).toBe(false)
      expect(back.get('user')).toBe('ada')
      expect(back.expiresAt).toBe(clock.now() + 600_000)
    })

    it(`undoes a logout when ${kind} comes from a location still caching the session (measured)`, async () => {
      const { sessions, clock, prefix } = setup()
      const elsewhere = staleLocation()
      const jar = new CookieJar()
      const s = await sessions.load(jar.request(), { SESSIONS: kv })
      s.set('user', 'ada')
      jar.update(await sessions.commit(s, new Response()))
      const copy = jar.clone()
      await elsewhere.warm(prefix)
      clock.advance(120_000)

      const logout = await sessions.load(jar.request(), { SESSIONS: kv })
      logout.destroy()
      await sessions.commit(logout, new Response())
      expect((await kv.list({ prefix })).keys).toEqual([])
      // After the logout, a request with a copy of the cookie reaches a location whose cache (cacheTtl, 30 to
      // 60 s) still holds the session: its load and its patch's re-read both see it, and the write brings it back.
      const stale = await sessions.load(copy.request(), { SESSIONS: elsewhere.namespace })
      expect(stale.isNew).toBe(false)
      if (kind === 'a change') stale.set('a', 1)
      await sessions.commit(stale, new Response())
      const back = await sessions.load(copy.request(), { SESSIONS: kv })
      expect(back.get('user')).toBe('ada')
      expect(back.expiresAt).toBe(clock.now() + 600_000)
    })
  }

  it('rejects a commit over KV’s 25 MiB value limit with ERR_TOO_LARGE, and writes nothing', async () => {
    const { sessions } = setup()
    const { namespace, writes } = watched()
    const env: Env = { SESSIONS: namespace }
    const jar = new CookieJar()
    const s = await sessions.load(jar.request(), env)
    s.set('big', 'x'.repeat(25 * 1024 * 1024))
    await expect(sessions.commit(s, new Response())).rejects.toSatisfy((error) =>
      isSessionError(error, 'ERR_TOO_LARGE'),
    )
    expect(writes).toEqual([])
  })
})
