/**
 * @module The Deno KV store under Deno: the shared store conformance suite, then what is particular to Deno KV
 * (versionstamp checks and retries, lazy expiry, the value limit). Run by test/stores/deno-kv.test.ts as
 * `deno test --unstable-kv` with this folder's deno.json, where `vitest` is ./vitest.ts.
 */

import { createSessions, type ServerStore, SessionError } from 'edge-session'
import { type DenoKv, type DenoKvAtomicOperation, denoKvStore } from 'edge-session/stores/deno-kv'
import { describe, expect, it } from 'vitest'
import { describeStoreConformance, storageKey } from '../conformance.ts'
import { CookieJar } from '../support/jar.ts'

// One database for the whole file (a test that opened its own would leak it as a resource); each store gets a
// prefix of its own, so every test starts with an empty key space.
const kv = await Deno.openKv(':memory:')
let stores = 0
const freshPrefix = () => ['test', ++stores, 'sess']

describeStoreConformance({
  name: 'deno-kv',
  kind: 'server',
  createStore: () => denoKvStore({ kv, prefix: freshPrefix() }),
  realTimeExpiry: true,
})

const SECRET = 'deno-kv-test-secret-0123456789abcdefghijkl'
const ctx = () => ({ env: undefined, signal: new AbortController().signal })
const meta = (expiresAt = 0) => ({ createdAt: 0, lastSeenAt: 0, expiresAt })

/** A Deno KV whose atomic commits report a lost race `failures` times before they are let through. */
function contendedKv(failures: number): DenoKv & { commits: number } {
  let left = failures
  const wrapper = {
    commits: 0,
    get: kv.get.bind(kv),
    set: kv.set.bind(kv),
    delete: kv.delete.bind(kv),
    list: kv.list.bind(kv),
    atomic(): DenoKvAtomicOperation {
      const op = kv.atomic()
      const wrapped: DenoKvAtomicOperation = {
        check(...checks) {
          op.check(...checks)
          return wrapped
        },
        set(key, value, options) {
          op.set(key, value, options)
          return wrapped
        },
        delete(key) {
          op.delete(key)
          return wrapped
        },
        commit: async () => {
          wrapper.commits++
          if (left-- > 0) return { ok: false }
          return op.commit()
        },
      }
      return wrapped
    },
  }
  return wrapper
}

describe('denoKvStore', () => {
  it('keeps a session as one entry under [...prefix, hashed id], with its TTL and deadlines', async () => {
    const prefix = freshPrefix()
    const sessions = createSessions({ store: denoKvStore({ kv, prefix }), secrets: SECRET })
    const jar = new CookieJar()
    const s = await sessions.load(jar.request())
    s.set('user', 'ada')
    jar.update(await sessions.commit(s, new Response()))
    const entries = await Array.fromAsync(kv.list<Record<string, unknown>>({ prefix }))
    expect(entries.map((e) => e.key)).toEqual([[...prefix, await storageKey(s.id)]])
    const value = entries[0]?.value
    expect(JSON.parse(String(value?.data))).toEqual({ user: 'ada' })
    expect(value?.meta).toEqual({ createdAt: s.createdAt, lastSeenAt: s.createdAt, expiresAt: s.expiresAt })
    // The default idle timeout (30 minutes) on this process's clock.
    expect(Number(value?.ttlEnd) - Date.now()).toBeGreaterThan(29 * 60_000)
    expect(Number(value?.ttlEnd) - Date.now()).toBeLessThanOrEqual(30 * 60_000)
  })

  it('merges many concurrent patches of one record, retrying the ones that lost the race', async () => {
    const store = denoKvStore({ kv, prefix: freshPrefix() })
    await store.set('k', { data: { start: true }, meta: meta() }, 60_000, ctx())
    const results = await Promise.all(
      Array.from({ length: 25 }, (_, i) =>
        store.patch(
          'k',
          { set: { [`k${i}`]: i }, delete: i === 0 ? ['start'] : [], meta: meta(i) },
          60_000,
          ctx(),
        ),
      ),
    )
    expect(results).toEqual(results.map(() => true))
    const expected: Record<string, number> = {}
    for (let i = 0; i < 25; i++) expected[`k${i}`] = i
    expect((await store.get('k', ctx()))?.data).toEqual(expected)
  })

  it('retries a write whose check failed, and gives up with ERR_STORE after maxAttempts', async () => {
    const prefix = freshPrefix()
    await denoKvStore({ kv, prefix }).set('k', { data: { a: 1 }, meta: meta() }, 60_000, ctx())

    const twice = contendedKv(2)
    const patient = denoKvStore({ kv: twice, prefix, maxAttempts: 3 })
    expect(await patient.patch('k', { set: { b: 2 }, delete: [], meta: meta(1) }, 60_000, ctx())).toBe(true)
    expect(twice.commits).toBe(3)
    expect((await patient.get('k', ctx()))?.data).toEqual({ a: 1, b: 2 })

    const always = contendedKv(Number.POSITIVE_INFINITY)
    const store = denoKvStore({ kv: always, prefix, maxAttempts: 4 })
    const patch = { set: { c: 3 }, delete: [], meta: meta(2) }
    await expect(store.patch('k', patch, 60_000, ctx())).rejects.toMatchObject({ code: 'ERR_STORE' })
    expect(always.commits).toBe(4)
    await expect(store.touch?.('k', meta(3), 60_000, ctx())).rejects.toBeInstanceOf(SessionError)
    expect((await store.get('k', ctx()))?.data).toEqual({ a: 1, b: 2 })
  })

  it('regenerates atomically: the new entry only while the old one exists, which goes in the same operation', async () => {
    const store = denoKvStore({ kv, prefix: freshPrefix() })
    await store.set('old', { data: { a: 1 }, meta: meta() }, 60_000, ctx())
    expect(await store.set('new', { data: { a: 1 }, meta: meta(1) }, 60_000, ctx(), 'old')).toBe(true)
    expect(await store.get('old', ctx())).toBeNull()
    expect(await store.get('new', ctx())).toEqual({ data: { a: 1 }, meta: meta(1) })
    // The old one is gone now: a second regenerate from it writes nothing.
    expect(await store.set('newer', { data: {}, meta: meta(2) }, 60_000, ctx(), 'old')).toBe(false)
    expect(await store.get('newer', ctx())).toBeNull()
  })

  it('reads an entry past its TTL as missing before Deno KV removes it, and never revives it', async () => {
    const prefix = freshPrefix()
    const store: ServerStore = denoKvStore({ kv, prefix })
    await store.set('k', { data: { a: 1 }, meta: meta() }, 30, ctx())
    await new Promise((resolve) => setTimeout(resolve, 60))
    expect(await store.get('k', ctx())).toBeNull()
    expect(await store.patch('k', { set: { b: 2 }, delete: [], meta: meta() }, 60_000, ctx())).toBe(false)
    expect(await store.touch?.('k', meta(), 60_000, ctx())).toBe(false)
    expect(await store.set('k2', { data: {}, meta: meta() }, 60_000, ctx(), 'k')).toBe(false)
    expect(await store.count?.(ctx())).toBe(0)
    expect(await store.get('k2', ctx())).toBeNull()
  })

  it('refuses data over Deno KV’s 64 KiB value limit with ERR_TOO_LARGE, writing nothing', async () => {
    const store = denoKvStore({ kv, prefix: freshPrefix() })
    await expect(
      store.set('k', { data: { big: 'x'.repeat(70_000) }, meta: meta() }, 60_000, ctx()),
    ).rejects.toMatchObject({ code: 'ERR_TOO_LARGE' })
    // Two-byte characters count twice: 33 000 of them do not fit either.
    await expect(
      store.set('k', { data: { big: 'ż'.repeat(33_000) }, meta: meta() }, 60_000, ctx()),
    ).rejects.toMatchObject({ code: 'ERR_TOO_LARGE' })
    expect(await store.get('k', ctx())).toBeNull()
    // Just under the limit is kept.
    await store.set('k', { data: { big: 'x'.repeat(60_000) }, meta: meta() }, 60_000, ctx())
    expect((await store.get('k', ctx()))?.data.big).toHaveLength(60_000)
  })

  it('turns a foreign value under its prefix into a store error, not a session', async () => {
    const prefix = freshPrefix()
    await kv.set([...prefix, 'k'], 'not a session')
    const sessions = createSessions({ store: denoKvStore({ kv, prefix }), secrets: SECRET })
    const store = denoKvStore({ kv, prefix })
    await expect(store.get('k', ctx())).rejects.toThrow(/not a session record/)
    // Counting skips it.
    expect(await sessions.count()).toBe(0)
  })

  it('refuses a configuration it cannot use with ERR_CONFIG', () => {
    const bad: unknown[] = [
      {},
      { kv: {} },
      { kv, prefix: [] },
      { kv, prefix: 'sess:' },
      { kv, prefix: [{}] },
      { kv, prefix: ['x'.repeat(2000)] },
      { kv, maxAttempts: 0 },
    ]
    for (const options of bad) {
      expect(() => denoKvStore(options as Parameters<typeof denoKvStore>[0])).toThrow(
        expect.objectContaining({ code: 'ERR_CONFIG' }),
      )
    }
  })
})
