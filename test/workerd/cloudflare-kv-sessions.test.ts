/** @module createSessions over the Cloudflare KV store inside workerd: KV's limits as a user of sessions meets them. */
import { createSessions, isSessionError, type SessionsOptions } from 'edge-session'
import { cloudflareKvStore, type KvNamespace } from 'edge-session/stores/cloudflare-kv'
import { describe, expect, it } from 'vitest'
import { CookieJar, manualClock } from '../support/jar.ts'
import { kv } from './bindings.ts'

const SECRET = 'kv-sessions-test-secret-0123456789abcdef'

/** `kv` seen through a log of its writes; reads take `slowReadsMs` longer once that is set. */
function watched() {
  const writes: { key: string; value: string; expirationTtl: number }[] = []
  const control = { slowReadsMs: 0 }
  const namespace: KvNamespace = {
    get: async (key, getOptions) => {
      if (control.slowReadsMs) await new Promise((resolve) => setTimeout(resolve, control.slowReadsMs))
      return kv.get(key, getOptions)
    },
    put: (key, value, putOptions) => {
      writes.push({ key, value, expirationTtl: putOptions.expirationTtl })
      return kv.put(key, value, putOptions)
    },
    delete: (key) => kv.delete(key),
    list: (listOptions) => kv.list(listOptions),
  }
  return { namespace, writes, control }
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
