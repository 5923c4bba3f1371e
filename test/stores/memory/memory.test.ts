/** @module The memory store: conformance, its bound under a flood, and sweeping without a timer. */

import { createSessions } from 'edge-session'
import { memoryStore } from 'edge-session/stores/memory'
import { describe, expect, it } from 'vitest'
import { describeStoreConformance } from '../../shared/conformance.ts'
import { CookieJar } from '../../support/jar.ts'

describeStoreConformance({
  name: 'memory',
  kind: 'server',
  createStore: () => memoryStore(),
  realTimeExpiry: true,
})

const ctx = { env: undefined, signal: new AbortController().signal }
const meta = (expiresAt = 0) => ({ createdAt: 0, lastSeenAt: 0, expiresAt })

describe('memoryStore', () => {
  it('holds its bound under a flood of new sessions, evicting the nearest deadlines first', async () => {
    const store = memoryStore({ maxSessions: 100 })
    await store.set('long-lived', { data: { keep: true }, meta: meta() }, 3_600_000, ctx)
    const sessions = createSessions({ store, secrets: 'a-secret-of-at-least-32-characters!!' })
    for (let i = 0; i < 1000; i++) {
      const s = await sessions.load(new Request('https://app.example/'))
      s.set('i', i)
      await sessions.commit(s, new Response())
      expect(store.size).toBeLessThanOrEqual(100)
    }
    expect(await store.count()).toBe(100)
    // New sessions expire in 30 minutes: the hour-long record outlives every one of them.
    expect(await store.get('long-lived', ctx)).toEqual({ data: { keep: true }, meta: meta() })
  })

  it('applies patches to the live record', async () => {
    const store = memoryStore()
    await store.set('k', { data: { a: 1, b: 2 }, meta: meta() }, 60_000, ctx)
    expect(
      await store.patch('k', { set: { c: 3 }, delete: ['a'], flash: [], meta: meta(5) }, 60_000, ctx),
    ).toBe(true)
    expect(await store.patch('k', { set: { d: 4 }, delete: [], flash: [], meta: meta(6) }, 60_000, ctx)).toBe(
      true,
    )
    expect(await store.get('k', ctx)).toEqual({ data: { b: 2, c: 3, d: 4 }, meta: meta(6) })
    expect(
      await store.patch('missing', { set: { a: 1 }, delete: [], flash: [], meta: meta() }, 60_000, ctx),
    ).toBe(false)
    expect(await store.get('missing', ctx)).toBeNull()
  })

  it('does not let a caller change a stored record through the object it gave or got', async () => {
    const store = memoryStore()
    const data: Record<string, unknown> = { a: 1 }
    await store.set('k', { data, meta: meta() }, 60_000, ctx)
    data.a = 2
    const got = await store.get('k', ctx)
    if (got) got.data.a = 3
    expect((await store.get('k', ctx))?.data).toEqual({ a: 1 })
  })

  it('sweeps expired records on later writes, with no timer of its own', async () => {
    const store = memoryStore()
    for (let i = 0; i < 50; i++) await store.set(`short-${i}`, { data: {}, meta: meta() }, 20, ctx)
    expect(store.size).toBe(50)
    await new Promise((resolve) => setTimeout(resolve, 40))
    await store.set('fresh', { data: {}, meta: meta() }, 60_000, ctx)
    expect(store.size).toBe(1)
  })

  it('sweeps expired records on a touch too, so a read-only workload does not keep them', async () => {
    const store = memoryStore()
    await store.set('reader', { data: { user: 'ada' }, meta: meta() }, 60_000, ctx)
    for (let i = 0; i < 50; i++) await store.set(`short-${i}`, { data: {}, meta: meta() }, 20, ctx)
    await new Promise((resolve) => setTimeout(resolve, 40))
    expect(store.size).toBe(51)
    expect(await store.touch?.('reader', meta(1), 60_000, ctx)).toBe(true)
    expect(store.size).toBe(1)
    expect(await store.get('reader', ctx)).toEqual({ data: { user: 'ada' }, meta: meta(1) })
  })

  it('never evicts the record it is writing, even when that record has the nearest deadline', async () => {
    const store = memoryStore({ maxSessions: 2 })
    await store.set('a', { data: { a: 1 }, meta: meta() }, 3_600_000, ctx)
    await store.set('b', { data: { b: 1 }, meta: meta() }, 3_600_000, ctx)
    // A full store, and a new record nearer its deadline than either: a set that resolves true must keep it.
    expect(await store.set('c', { data: { c: 1 }, meta: meta() }, 60_000, ctx)).toBe(true)
    expect(await store.get('c', ctx)).toEqual({ data: { c: 1 }, meta: meta() })
    expect(store.size).toBe(2)
    // The same through a regenerate into a full store.
    expect(await store.set('d', { data: { d: 1 }, meta: meta() }, 1_000, ctx, 'c')).toBe(true)
    expect(await store.get('d', ctx)).toEqual({ data: { d: 1 }, meta: meta() })
    expect(store.size).toBe(2)
  })

  it('evicts by the latest deadline of records extended by touches and rewrites', async () => {
    const store = memoryStore({ maxSessions: 3 })
    await store.set('early', { data: {}, meta: meta() }, 60_000, ctx)
    await store.set('middle', { data: {}, meta: meta() }, 120_000, ctx)
    await store.set('late', { data: {}, meta: meta() }, 180_000, ctx)
    // `early` is now the furthest from its deadline, `late` the nearest: a fourth record evicts `late`.
    await store.touch?.('early', meta(1), 600_000, ctx)
    await store.patch('middle', { set: { x: 1 }, delete: [], flash: [], meta: meta(1) }, 600_000, ctx)
    await store.set('new', { data: {}, meta: meta() }, 600_000, ctx)
    expect(await store.get('late', ctx)).toBeNull()
    for (const key of ['early', 'middle', 'new']) expect(await store.get(key, ctx)).not.toBeNull()
    // A shortened deadline counts too: `middle` rewritten to expire first is the next one evicted.
    await store.patch('middle', { set: {}, delete: [], flash: [], meta: meta(2) }, 30_000, ctx)
    await store.set('newer', { data: {}, meta: meta() }, 600_000, ctx)
    expect(await store.get('middle', ctx)).toBeNull()
    expect(store.size).toBe(3)
  })

  it('keeps flash markers on a touch, and treats a patch as a change set of them', async () => {
    const store = memoryStore()
    await store.set(
      'k',
      { data: { notice: 'Saved!', user: 'ada' }, meta: { ...meta(), flash: ['notice'] } },
      60_000,
      ctx,
    )
    await store.touch?.('k', meta(1), 60_000, ctx)
    expect((await store.get('k', ctx))?.meta).toEqual({ ...meta(1), flash: ['notice'] })
    await store.patch('k', { set: { a: 1 }, delete: [], flash: [], meta: meta(2) }, 60_000, ctx)
    expect((await store.get('k', ctx))?.meta).toEqual({ ...meta(2), flash: ['notice'] })
    await store.patch('k', { set: {}, delete: ['notice'], flash: [], meta: meta(3) }, 60_000, ctx)
    expect((await store.get('k', ctx))?.meta).toEqual(meta(3))
  })

  it('refuses a bound that is not a positive integer', () => {
    for (const maxSessions of [0, -1, 1.5, Number.NaN]) {
      expect(() => memoryStore({ maxSessions })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }))
    }
  })

  it('is shared by two sessions instances in one process (one cookie works on both)', async () => {
    const store = memoryStore()
    const secrets = 'a-secret-of-at-least-32-characters!!'
    const a = createSessions({ store, secrets })
    const b = createSessions({ store, secrets })
    const jar = new CookieJar()
    const s = await a.load(jar.request())
    s.set('user', 'ada')
    jar.update(await a.commit(s, new Response()))
    expect((await b.load(jar.request())).get('user')).toBe('ada')
  })
})
