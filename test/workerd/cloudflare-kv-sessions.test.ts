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

type Env = { SESSIONS: KvNamespace }

function setup(extra: Partial<SessionsOptions> = {}) {
  const clock = manualClock()
  const sessions = createSessions<{ user?: string; a?: number }>({
    store: cloudflareKvStore({ namespace: (env: Env) => env.SESSIONS, prefix: `s-${crypto.randomUUID()}:` }),
    secrets: [SECRET],
    idleTimeout: 600,
    now: clock.now,
    ...extra,
  })
  return { sessions, clock }
}

describe('sessions over Cloudflare KV', () => {
  it('refuses an idleTimeout under 60 s at createSessions', () => {
    let error: unknown
    try {
      setup({ idleTimeout: 59, touchInterval: 10 })
    } catch (caught) {
      error = caught
    }
    expect(isSessionError(error, 'ERR_CONFIG')).toBe(true)
    expect((error as Error).message).toMatch(/at least 60 seconds/)
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
})
