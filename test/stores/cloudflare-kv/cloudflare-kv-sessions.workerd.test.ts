/** @module createSessions over the Cloudflare KV store inside workerd: KV's limits as a user of sessions meets them. */
import { createSessions, isSessionError, type SessionsOptions } from 'edge-session'
import { cloudflareKvStore, type KvNamespace } from 'edge-session/stores/cloudflare-kv'
import { describe, expect, it } from 'vitest'
import { storageKey } from '../../shared/conformance.ts'
import { CookieJar, manualClock } from '../../support/jar.ts'
import { kv } from '../../support/workerd/bindings.ts'

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

describe('sessions per user over Cloudflare KV', () => {
  type Listed = { name: string; expiration?: number; metadata?: unknown }
  const HASH = '[A-Za-z0-9_-]{43}'

  /** Every key under `prefix`, with its expiration and metadata. */
  async function keysUnder(prefix: string): Promise<Listed[]> {
    return (await kv.list({ prefix })).keys as Listed[]
  }

  /** A browser that signs in as `userId`: an anonymous request, then one that binds the user. */
  async function login(sessions: ReturnType<typeof setup>['sessions'], env: Env, userId: string) {
    const jar = new CookieJar()
    const first = await sessions.load(jar.request(), env)
    first.set('a', 1)
    jar.update(await sessions.commit(first, new Response()))
    const s = await sessions.load(jar.request(), env)
    s.setUser(userId)
    jar.update(await sessions.commit(s, new Response()))
    return { jar, session: s }
  }

  it('costs KV these operations per request for a session bound to a user', async () => {
    const { sessions, clock } = setup()
    const { namespace, ops } = watched()
    const env: Env = { SESSIONS: namespace }
    const jar = new CookieJar()
    async function request(handle: (s: Awaited<ReturnType<typeof sessions.load>>) => void) {
      ops.length = 0
      const s = await sessions.load(jar.request(), env)
      handle(s)
      jar.update(await sessions.commit(s, new Response()))
      clock.advance(1_000)
      return [...ops].sort()
    }
    const cost = async (run: () => Promise<unknown>) => {
      ops.length = 0
      await run()
      return [...ops].sort()
    }

    expect(await request((s) => s.set('a', 1))).toEqual(['put'])
    // Login: load, the check that the anonymous record still exists, the new record and its entry, the old
    // record's deletion.
    expect(await request((s) => s.setUser('ada'))).toEqual(['delete', 'get', 'get', 'put', 'put'])
    expect(await request((s) => s.get('a'))).toEqual(['get'])
    // A change (or a touch): load, the fresh re-read, the record, then its entry.
    expect(await request((s) => s.set('a', 2))).toEqual(['get', 'get', 'put', 'put'])
    clock.advance(61_000)
    expect(await request(() => {})).toEqual(['get', 'get', 'put', 'put'])
    // Regenerate moves the entry: two puts, two deletes.
    expect(await request((s) => s.regenerate())).toEqual(['delete', 'delete', 'get', 'get', 'put', 'put'])
    // A device list: one list, then one read per session.
    expect(await cost(() => sessions.listUserSessions('ada', env))).toEqual(['get', 'list'])
    expect(await cost(() => sessions.countUsers(env))).toEqual(['list'])
    // Logout: load, then the record and its entry deleted at once.
    expect(await request((s) => s.destroy())).toEqual(['delete', 'delete', 'get'])
    const other = await login(sessions, { SESSIONS: kv }, 'ada')
    // Revoking one: the list, a fresh read of the record, then the record and its entry deleted.
    expect(await cost(() => sessions.revokeUserSession('ada', other.session.handle, env))).toEqual([
      'delete',
      'delete',
      'get',
      'list',
    ])
  })

  it('names the index by hashed user keys: no user id appears in any key name or entry metadata', async () => {
    const { sessions, prefix } = setup()
    const env: Env = { SESSIONS: kv }
    const ids = ['alice@example.com', 'Bob Smith 42', 'urn:user:7f3a9c']
    for (const id of ids) {
      await login(sessions, env, id)
      await login(sessions, env, id)
    }
    await login(sessions, env, ids[0] as string)
    const keys = await keysUnder(prefix)
    // Seven records and their seven index entries; nothing else.
    expect(keys).toHaveLength(14)
    const shape = new RegExp(`^(${HASH}|u:${HASH}:${HASH})$`)
    for (const { name, metadata } of keys) {
      expect(name.slice(prefix.length)).toMatch(shape)
      for (const id of ids) {
        for (const form of [id, encodeURIComponent(id), btoa(id).replace(/=+$/, '')]) {
          expect(name).not.toContain(form)
          expect(JSON.stringify(metadata)).not.toContain(form)
        }
      }
    }
    // Three users, one index each.
    const users = new Set(
      keys.filter((k) => k.name.startsWith(`${prefix}u:`)).map((k) => k.name.split(':')[2]),
    )
    expect(users.size).toBe(3)
    expect(await sessions.countUsers(env)).toBe(3)
    expect(await sessions.count(env)).toBe(7)
  })

  it('gives each index entry its record’s expiration and deadline, through login, change, touch, regenerate and logout', async () => {
    const { sessions, clock, prefix } = setup({ absoluteTimeout: 900 })
    const env: Env = { SESSIONS: kv }
    /** The record and the entry under `prefix`, which must be exactly one of each. */
    async function pair() {
      const keys = await keysUnder(prefix)
      const entries = keys.filter((k) => k.name.startsWith(`${prefix}u:`))
      const records = keys.filter((k) => !k.name.startsWith(`${prefix}u:`))
      expect(entries.map((k) => k.name)).toHaveLength(1)
      expect(records.map((k) => k.name)).toHaveLength(1)
      const [entry, record] = [entries[0] as Listed, records[0] as Listed]
      expect(entry.name.endsWith(`:${record.name.slice(prefix.length)}`)).toBe(true)
      // KV sets each expiration from its own put: the two puts may fall in different seconds.
      expect(Math.abs((entry.expiration ?? 0) - (record.expiration ?? Number.NaN))).toBeLessThanOrEqual(1)
      return { entry, record }
    }
    const { jar, session } = await login(sessions, env, 'ada')
    let { entry, record } = await pair()
    expect(entry.metadata).toEqual({ handle: session.handle, expiresAt: session.expiresAt })
    expect(record.metadata).toEqual({ expiresAt: session.expiresAt })
    expect((entry.expiration ?? 0) - Date.now() / 1000).toBeGreaterThan(595)

    // A touch extends both.
    clock.advance(61_000)
    const touched = await sessions.load(jar.request(), env)
    jar.update(await sessions.commit(touched, new Response()))
    ;({ entry, record } = await pair())
    expect(entry.metadata).toEqual({ handle: session.handle, expiresAt: clock.now() + 600_000 })
    expect((entry.expiration ?? 0) - Date.now() / 1000).toBeGreaterThan(595)

    // Near the absolute deadline the TTL shrinks: the entry's with the record's.
    clock.advance(500_000)
    const changed = await sessions.load(jar.request(), env)
    changed.set('a', 2)
    jar.update(await sessions.commit(changed, new Response()))
    ;({ entry, record } = await pair())
    expect(changed.expiresAt).toBe(session.createdAt + 900_000)
    expect(entry.metadata).toEqual({ handle: session.handle, expiresAt: changed.expiresAt })
    expect(record.metadata).toEqual({ expiresAt: changed.expiresAt })
    expect((entry.expiration ?? 0) - Date.now() / 1000).toBeLessThanOrEqual(340)

    // A regenerate moves the entry to the new record, with the new handle.
    const regenerated = await sessions.load(jar.request(), env)
    regenerated.regenerate()
    jar.update(await sessions.commit(regenerated, new Response()))
    ;({ entry } = await pair())
    expect(entry.metadata).toMatchObject({ handle: regenerated.handle })
    expect(regenerated.handle).not.toBe(session.handle)

    // A logout leaves nothing.
    const logout = await sessions.load(jar.request(), env)
    logout.destroy()
    await sessions.commit(logout, new Response())
    expect(await keysUnder(prefix)).toEqual([])
  })

  it('a revoked session’s next request is a fresh session, and neither its record nor its entry is left', async () => {
    const { sessions, prefix } = setup()
    const env: Env = { SESSIONS: kv }
    const phone = await login(sessions, env, 'ada')
    const laptop = await login(sessions, env, 'ada')
    expect(await sessions.revokeUserSession('ada', phone.session.handle, env)).toBe(true)
    const names = (await keysUnder(prefix)).map((k) => k.name)
    expect(names).toHaveLength(2)
    for (const name of names) expect(name).not.toContain(await storageKey(phone.session.id))
    const next = await sessions.load(phone.jar.request(), env)
    expect([next.isNew, next.userId, next.get('a')]).toEqual([true, null, undefined])
    expect((await sessions.load(laptop.jar.request(), env)).userId).toBe('ada')
  })

  it('a revocation that lands while a change is between its read and its write is undone, and the session is listed again (measured)', async () => {
    const { sessions, clock } = setup()
    const held = heldWrites()
    const env: Env = { SESSIONS: kv }
    const { jar, session } = await login(sessions, env, 'ada')
    clock.advance(1_000)
    const other = await sessions.load(jar.request(), { SESSIONS: held.namespace })
    other.set('a', 2)
    held.hold()
    const committing = sessions.commit(other, new Response())
    await held.reached
    expect(await sessions.revokeUserSessions('ada', {}, env)).toBe(1)
    expect(await sessions.listUserSessions('ada', env)).toEqual([])
    held.release()
    await committing
    // KV has no conditional write: the change brings the session back. Its entry is written after the record, so
    // the session it brought back is listed, and a second revocation ends it.
    expect((await sessions.load(jar.request(), env)).userId).toBe('ada')
    expect((await sessions.listUserSessions('ada', env)).map((s) => s.handle)).toEqual([session.handle])
    expect(await sessions.revokeUserSessions('ada', {}, env)).toBe(1)
    expect((await sessions.load(jar.request(), env)).isNew).toBe(true)
  })

  it('keeps records written before handles and users working, and writes no index entry for them', async () => {
    const { sessions, prefix } = setup()
    const env: Env = { SESSIONS: kv }
    const jar = new CookieJar()
    const created = await sessions.load(jar.request(), env)
    created.set('a', 1)
    jar.update(await sessions.commit(created, new Response()))
    // The record as a version without handles wrote it.
    const key = await storageKey(created.id)
    const stored = JSON.parse((await kv.get(prefix + key, { type: 'text' })) ?? 'null')
    expect(stored.meta.handle).toBe(created.handle)
    delete stored.meta.handle
    await kv.put(prefix + key, JSON.stringify(stored), { expirationTtl: 600, metadata: { expiresAt: 0 } })
    const loaded = await sessions.load(jar.request(), env)
    expect([loaded.isNew, loaded.get('a'), loaded.userId]).toEqual([false, 1, null])
    expect(loaded.handle).toMatch(/^[A-Za-z0-9_-]{22}$/)
    loaded.set('a', 2)
    jar.update(await sessions.commit(loaded, new Response()))
    expect((await keysUnder(prefix)).map((k) => k.name)).toEqual([prefix + key])
    // Signing in from it moves it into the index like any other.
    const bound = await sessions.load(jar.request(), env)
    bound.setUser('ada')
    jar.update(await sessions.commit(bound, new Response()))
    expect((await sessions.listUserSessions('ada', env)).map((s) => s.handle)).toEqual([bound.handle])
  })

  it('ignores a damaged index entry: no error, not listed, not counted', async () => {
    const { sessions, prefix } = setup()
    const env: Env = { SESSIONS: kv }
    const { session } = await login(sessions, env, 'ada')
    const name = (await keysUnder(`${prefix}u:`))[0]?.name ?? ''
    const userKey = name.split(':')[2] as string
    const put = (key: string, metadata: unknown) =>
      kv.put(key, '', { expirationTtl: 600, metadata: metadata as { expiresAt: number } })
    await put(`${prefix}u:${userKey}:${'B'.repeat(43)}`, null)
    await put(`${prefix}u:${userKey}:${'C'.repeat(43)}`, { handle: 7 })
    await put(`${prefix}u:${userKey}:`, { handle: 'h' })
    await put(`${prefix}u:${userKey}:x:y`, { handle: 'h' })
    await put(`${prefix}u:${'D'.repeat(43)}:${'E'.repeat(43)}`, { expiresAt: 1 })
    await put(`${prefix}u:nocolon`, { handle: 'h' })
    // An entry whose record is missing is listed by the store, and skipped by the sessions layer.
    await put(`${prefix}u:${userKey}:${'F'.repeat(43)}`, { handle: 'orphan', expiresAt: 1 })
    const list = await sessions.listUserSessions('ada', env)
    expect(list.map((s) => s.handle)).toEqual([session.handle])
    expect(await sessions.countUsers(env)).toBe(1)
    expect(await sessions.revokeUserSessions('ada', { except: session.handle }, env)).toBe(0)
    expect(await sessions.revokeUserSessions('ada', {}, env)).toBe(1)
    expect(await sessions.listUserSessions('ada', env)).toEqual([])
  })
})
