/** @module The Cloudflare KV store against Miniflare's KV inside workerd, where KV's own limits are enforced. */
import { describe, expect, it } from 'vitest'
import { isSessionError } from '../../../src/errors.ts'
import type { SessionRecord, StoreContext } from '../../../src/store.ts'
import { cloudflareKvStore, type KvNamespace } from '../../../src/stores/cloudflare-kv.ts'
import { describeStoreConformance } from '../../shared/conformance.ts'
import { bindings, kv, type TestBindings } from '../../support/workerd/bindings.ts'

const ctx = (env: unknown = {}): StoreContext => ({ env, signal: new AbortController().signal })

let prefixes = 0
/** A prefix no other test writes under, so tests sharing the namespace do not see each other's keys. */
const freshPrefix = () => `t${++prefixes}-${crypto.randomUUID()}:`

describeStoreConformance({
  name: 'cloudflare-kv',
  kind: 'server',
  concurrentPatches: 'last-write-wins',
  createStore: () =>
    cloudflareKvStore({ namespace: (env: TestBindings) => env.SESSIONS, prefix: freshPrefix() }),
  env: () => bindings,
})

const record = (data: Record<string, unknown>, expiresAt = 1_000_000): SessionRecord => ({
  data,
  meta: { createdAt: 1_000, lastSeenAt: 2_000, expiresAt },
})

/** What `list()` reports for the one key under `prefix`: name, absolute expiration (s), metadata. */
async function listed(prefix: string) {
  const { keys } = await kv.list({ prefix })
  return keys as { name: string; expiration?: number; metadata?: unknown }[]
}

const nowSeconds = () => Date.now() / 1000

/** The message of the `ERR_CONFIG` that `run` throws, or what happened instead. */
function configError(run: () => unknown): string {
  try {
    run()
  } catch (error) {
    return isSessionError(error, 'ERR_CONFIG') ? error.message : `not ERR_CONFIG: ${String(error)}`
  }
  return 'no error'
}

describe('cloudflareKvStore inside workerd', () => {
  it('writes one JSON value under prefix + key, with the deadline in metadata', async () => {
    const prefix = freshPrefix()
    const store = cloudflareKvStore({ namespace: kv, prefix })
    await expect(store.set('abc', record({ n: 1 }, 123_456), 120_000, ctx())).resolves.toBe(true)

    expect(JSON.parse((await kv.get(`${prefix}abc`, { type: 'text' })) ?? 'null')).toEqual(
      record({ n: 1 }, 123_456),
    )
    const [entry, ...rest] = await listed(prefix)
    expect(rest).toEqual([])
    expect(entry?.name).toBe(`${prefix}abc`)
    expect(entry?.metadata).toEqual({ expiresAt: 123_456 })
    await expect(store.get('abc', ctx())).resolves.toEqual(record({ n: 1 }, 123_456))
  })

  it('raises a TTL under 60 s to 60 s (KV refuses shorter ones)', async () => {
    await expect(kv.put('refused', 'x', { expirationTtl: 59, metadata: { expiresAt: 0 } })).rejects.toThrow(
      /60/,
    )

    const prefix = freshPrefix()
    const store = cloudflareKvStore({ namespace: kv, prefix })
    const before = nowSeconds()
    await store.set('short', record({}), 1, ctx())
    const [entry] = await listed(prefix)
    expect(entry?.expiration).toBeGreaterThanOrEqual(Math.floor(before) + 60)
    expect(entry?.expiration).toBeLessThanOrEqual(Math.ceil(nowSeconds()) + 60)
  })

  it('rounds a TTL up to whole seconds, so KV never drops a record before its deadline', async () => {
    const prefix = freshPrefix()
    const store = cloudflareKvStore({ namespace: kv, prefix })
    const before = nowSeconds()
    await store.set('long', record({}), 90_001, ctx())
    const [entry] = await listed(prefix)
    expect(entry?.expiration).toBeGreaterThanOrEqual(Math.floor(before) + 91)
    expect(entry?.expiration).toBeLessThanOrEqual(Math.ceil(nowSeconds()) + 91)
  })

  it('patch keeps keys another request wrote after this one loaded, and sets the TTL', async () => {
    const prefix = freshPrefix()
    const store = cloudflareKvStore({ namespace: kv, prefix })
    await store.set('k', record({ a: 1, b: 1, gone: true }), 60_000, ctx())
    // Another request changes `b` between this request's load and its commit.
    await store.patch('k', { set: { b: 2 }, delete: [], flash: [], meta: record({}).meta }, 60_000, ctx())

    const meta = { createdAt: 1_000, lastSeenAt: 5_000, expiresAt: 9_000_000 }
    const before = nowSeconds()
    await expect(
      store.patch(
        'k',
        { set: { a: 2, c: [1, { d: null }] }, delete: ['gone'], flash: [], meta },
        300_000,
        ctx(),
      ),
    ).resolves.toBe(true)

    await expect(store.get('k', ctx())).resolves.toEqual({ data: { a: 2, b: 2, c: [1, { d: null }] }, meta })
    const [entry] = await listed(prefix)
    expect(entry?.metadata).toEqual({ expiresAt: 9_000_000 })
    expect(entry?.expiration).toBeGreaterThanOrEqual(Math.floor(before) + 300)
  })

  it('two isolates whose patches overlap: the last write wins (KV has no transactions)', async () => {
    const prefix = freshPrefix()
    // Hold every write until both patches have read: the window KV cannot close.
    let reads = 0
    let bothRead: () => void = () => {}
    const readsDone = new Promise<void>((resolve) => {
      bothRead = resolve
    })
    const overlapping: KvNamespace = {
      get: async (key, options) => {
        const value = await kv.get(key, options)
        if (++reads === 2) bothRead()
        return value
      },
      put: async (key, value, options) => {
        await readsDone
        return kv.put(key, value, options)
      },
      delete: (key) => kv.delete(key),
      list: (options) => kv.list(options),
    }
    const isolateA = cloudflareKvStore({ namespace: overlapping, prefix })
    const isolateB = cloudflareKvStore({ namespace: overlapping, prefix })
    await cloudflareKvStore({ namespace: kv, prefix }).set('k', record({ user: 'ada' }), 60_000, ctx())

    const meta = record({}).meta
    await Promise.all([
      isolateA.patch('k', { set: { a: 1 }, delete: [], flash: [], meta }, 60_000, ctx()),
      isolateB.patch('k', { set: { b: 1 }, delete: [], flash: [], meta }, 60_000, ctx()),
    ])
    const data = (await isolateA.get('k', ctx()))?.data
    expect([
      { user: 'ada', a: 1 },
      { user: 'ada', b: 1 },
    ]).toContainEqual(data)
  })

  it('patches that do not overlap merge: each re-reads the record before writing', async () => {
    const prefix = freshPrefix()
    const isolateA = cloudflareKvStore({ namespace: kv, prefix })
    const isolateB = cloudflareKvStore({ namespace: kv, prefix })
    await isolateA.set('k', record({ user: 'ada' }), 60_000, ctx())
    // Both requests loaded the session before either wrote; their commits come one after the other.
    const meta = record({}).meta
    await isolateA.patch('k', { set: { a: 1 }, delete: [], flash: [], meta }, 60_000, ctx())
    await isolateB.patch('k', { set: { b: 1 }, delete: ['user'], flash: [], meta }, 60_000, ctx())
    await expect(isolateA.get('k', ctx())).resolves.toEqual({ data: { a: 1, b: 1 }, meta })
  })

  it('patch never recreates a missing record', async () => {
    const prefix = freshPrefix()
    const store = cloudflareKvStore({ namespace: kv, prefix })
    await expect(
      store.patch('missing', { set: { a: 1 }, delete: [], flash: [], meta: record({}).meta }, 60_000, ctx()),
    ).resolves.toBe(false)
    expect(await listed(prefix)).toEqual([])
  })

  it('patch stores a data key named __proto__ as data', async () => {
    const prefix = freshPrefix()
    const store = cloudflareKvStore({ namespace: kv, prefix })
    await store.set('p', record({}), 60_000, ctx())
    const set = JSON.parse('{"__proto__": {"polluted": true}}') as Record<string, unknown>
    await store.patch('p', { set, delete: [], flash: [], meta: record({}).meta }, 60_000, ctx())

    const data = (await store.get('p', ctx()))?.data ?? {}
    expect(Object.keys(data)).toEqual(['__proto__'])
    expect(Object.hasOwn(data, '__proto__')).toBe(true)
    expect(Object.getOwnPropertyDescriptor(data, '__proto__')?.value).toEqual({ polluted: true })
    expect('polluted' in data).toBe(false)
  })

  it('reads records back into null-prototype data, every key a plain own key', async () => {
    const prefix = freshPrefix()
    const store = cloudflareKvStore({ namespace: kv, prefix })
    const text =
      '{"data":{"__proto__":{"x":1},"constructor":2,"toString":3},"meta":{"createdAt":1,"lastSeenAt":2,"expiresAt":3}}'
    await kv.put(`${prefix}k`, text, { expirationTtl: 60, metadata: { expiresAt: 3 } })
    const data = (await store.get('k', ctx()))?.data ?? {}
    expect(Object.getPrototypeOf(data)).toBeNull()
    expect(Object.keys(data)).toEqual(['__proto__', 'constructor', 'toString'])
    expect(Object.getOwnPropertyDescriptor(data, '__proto__')?.value).toEqual({ x: 1 })
    expect(data.constructor).toBe(2)
  })

  it('patch writes nothing once the sessions layer has given up on the call', async () => {
    const prefix = freshPrefix()
    const store = cloudflareKvStore({ namespace: kv, prefix })
    await store.set('late', record({ a: 1 }), 60_000, ctx())
    const controller = new AbortController()
    controller.abort(new Error('storeTimeout'))

    await expect(
      store.patch('late', { set: { a: 2 }, delete: [], flash: [], meta: record({}).meta }, 60_000, {
        env: {},
        signal: controller.signal,
      }),
    ).rejects.toThrow('storeTimeout')
    await expect(store.get('late', ctx())).resolves.toEqual(record({ a: 1 }))
  })

  it('set with replaces writes the new record and deletes the old one', async () => {
    const prefix = freshPrefix()
    const store = cloudflareKvStore({ namespace: kv, prefix })
    await store.set('old', record({ user: 'u1' }), 60_000, ctx())
    await expect(store.set('new', record({ user: 'u1', role: 'admin' }), 60_000, ctx(), 'old')).resolves.toBe(
      true,
    )

    await expect(store.get('old', ctx())).resolves.toBeNull()
    await expect(store.get('new', ctx())).resolves.toEqual(record({ user: 'u1', role: 'admin' }))
    expect((await listed(prefix)).map((entry) => entry.name)).toEqual([`${prefix}new`])
  })

  it('set with replaces writes nothing when the old record was destroyed meanwhile', async () => {
    const prefix = freshPrefix()
    const store = cloudflareKvStore({ namespace: kv, prefix })
    await store.set('old', record({ user: 'u1' }), 60_000, ctx())
    await store.delete('old', ctx())

    await expect(store.set('new', record({ user: 'u1' }), 60_000, ctx(), 'old')).resolves.toBe(false)
    expect(await listed(prefix)).toEqual([])
  })

  it('set with replaces, retried after it landed, resolves true again and leaves the new record alone', async () => {
    const prefix = freshPrefix()
    const store = cloudflareKvStore({ namespace: kv, prefix })
    await store.set('old', record({ user: 'u1' }), 60_000, ctx())
    await expect(store.set('new', record({ user: 'u1' }), 60_000, ctx(), 'old')).resolves.toBe(true)
    await expect(store.set('new', record({ user: 'u1' }), 60_000, ctx(), 'old')).resolves.toBe(true)
    expect((await listed(prefix)).map((entry) => entry.name)).toEqual([`${prefix}new`])
    await expect(store.get('new', ctx())).resolves.toEqual(record({ user: 'u1' }))
  })

  it('reads a value that is not a session record as missing', async () => {
    const prefix = freshPrefix()
    const store = cloudflareKvStore({ namespace: kv, prefix })
    for (const [key, value] of [
      ['text', 'not json'],
      ['array', '[1,2]'],
      ['nometa', '{"data":{}}'],
      ['badmeta', '{"data":{},"meta":{"createdAt":"1","lastSeenAt":2,"expiresAt":3}}'],
      ['arraydata', '{"data":[1],"meta":{"createdAt":1,"lastSeenAt":2,"expiresAt":3}}'],
      ['nulltime', '{"data":{},"meta":{"createdAt":1,"lastSeenAt":null,"expiresAt":3}}'],
      ['badflash', '{"data":{"a":1},"meta":{"createdAt":1,"lastSeenAt":2,"expiresAt":3,"flash":"a"}}'],
      ['flashnumber', '{"data":{"a":1},"meta":{"createdAt":1,"lastSeenAt":2,"expiresAt":3,"flash":[1]}}'],
    ] as const) {
      await kv.put(prefix + key, value, { expirationTtl: 60, metadata: { expiresAt: 0 } })
      await expect(store.get(key, ctx())).resolves.toBeNull()
    }
  })

  it('delete removes the record', async () => {
    const prefix = freshPrefix()
    const store = cloudflareKvStore({ namespace: kv, prefix })
    await store.set('d', record({}), 60_000, ctx())
    await store.delete('d', ctx())
    await expect(store.get('d', ctx())).resolves.toBeNull()
    expect(await listed(prefix)).toEqual([])
  })

  it('count lists its own prefix only, one list call per 1000 keys', async () => {
    const prefix = freshPrefix()
    await Promise.all(
      Array.from({ length: 1_005 }, (_, i) =>
        kv.put(`${prefix}${i}`, JSON.stringify(record({})), {
          expirationTtl: 60,
          metadata: { expiresAt: 0 },
        }),
      ),
    )
    await kv.put(`other-${prefix}`, '{}', { expirationTtl: 60, metadata: { expiresAt: 0 } })
    let listCalls = 0
    const counted: KvNamespace = {
      get: (key, options) => kv.get(key, options),
      put: (key, value, options) => kv.put(key, value, options),
      delete: (key) => kv.delete(key),
      list: (options) => {
        listCalls++
        return kv.list(options)
      },
    }

    await expect(cloudflareKvStore({ namespace: counted, prefix }).count?.(ctx())).resolves.toBe(1_005)
    expect(listCalls).toBe(2)
    await expect(cloudflareKvStore({ namespace: kv, prefix: freshPrefix() }).count?.(ctx())).resolves.toBe(0)
  })

  it('takes the namespace from the env of each call', async () => {
    const prefix = freshPrefix()
    const store = cloudflareKvStore({ namespace: (env: { KV?: KvNamespace }) => env.KV, prefix })
    await store.set('e', record({ via: 'env' }), 60_000, ctx({ KV: kv }))
    await expect(store.get('e', ctx({ KV: kv }))).resolves.toEqual(record({ via: 'env' }))

    const missing = store.get('e', ctx({}))
    await expect(missing).rejects.toSatisfy((error) => isSessionError(error, 'ERR_CONFIG'))
    await expect(missing).rejects.toThrow(/returned no KV namespace/)
    const noEnv = store.get('e', { env: undefined, signal: new AbortController().signal })
    await expect(noEnv).rejects.toSatisfy((error) => isSessionError(error, 'ERR_CONFIG'))
    await expect(noEnv).rejects.toThrow(/sessions\.load\(request, env\)/)
  })

  it('patches flash markers as a change set: a patch keeps the markers of keys it does not name', async () => {
    const prefix = freshPrefix()
    const store = cloudflareKvStore({ namespace: kv, prefix })
    const times = (lastSeenAt: number) => ({ createdAt: 1_000, lastSeenAt, expiresAt: 1_000_000 })
    await store.set('k', record({ user: 'ada' }), 60_000, ctx())
    // One request flashes a notice; others, loaded before it, change another key and touch (an empty patch).
    const flash = Object.assign(Object.create(null), { notice: 'Saved!' })
    await store.patch('k', { set: flash, delete: [], flash: ['notice'], meta: times(2) }, 60_000, ctx())
    await store.patch('k', { set: { a: 1 }, delete: [], flash: [], meta: times(3) }, 60_000, ctx())
    await store.patch('k', { set: {}, delete: [], flash: [], meta: times(4) }, 60_000, ctx())
    await expect(store.get('k', ctx())).resolves.toEqual({
      data: { user: 'ada', notice: 'Saved!', a: 1 },
      meta: { ...times(4), flash: ['notice'] },
    })
    // Setting the key again without flash, or deleting it, takes its marker off.
    await store.patch('k', { set: { notice: 'plain' }, delete: [], flash: [], meta: times(5) }, 60_000, ctx())
    await expect(store.get('k', ctx())).resolves.toMatchObject({ meta: times(5) })
    expect((await store.get('k', ctx()))?.meta.flash).toBeUndefined()
  })

  it('overlapping patches keep one whole record: a flash value never loses its marker', async () => {
    // KV cannot merge patches whose read and write overlap (last write wins). What it keeps is either request's
    // whole view: the notice with its marker, or neither; never the notice as a plain value read forever.
    for (const flasherWritesLast of [false, true]) {
      const prefix = freshPrefix()
      let reads = 0
      let bothRead: () => void = () => {}
      const readsDone = new Promise<void>((resolve) => {
        bothRead = resolve
      })
      let releaseFirst: () => void = () => {}
      const firstDone = new Promise<void>((resolve) => {
        releaseFirst = resolve
      })
      const overlapping = (writesFirst: boolean): KvNamespace => ({
        get: async (key, options) => {
          const value = await kv.get(key, options)
          if (++reads === 2) bothRead()
          return value
        },
        put: async (key, value, options) => {
          await readsDone
          if (!writesFirst) await firstDone
          await kv.put(key, value, options)
          if (writesFirst) releaseFirst()
        },
        delete: (key) => kv.delete(key),
        list: (options) => kv.list(options),
      })
      const flasher = cloudflareKvStore({ namespace: overlapping(!flasherWritesLast), prefix })
      const writer = cloudflareKvStore({ namespace: overlapping(flasherWritesLast), prefix })
      await cloudflareKvStore({ namespace: kv, prefix }).set('k', record({ user: 'ada' }), 60_000, ctx())
      const meta = record({}).meta
      await Promise.all([
        flasher.patch('k', { set: { notice: 'Saved!' }, delete: [], flash: ['notice'], meta }, 60_000, ctx()),
        writer.patch('k', { set: { a: 1 }, delete: [], flash: [], meta }, 60_000, ctx()),
      ])
      const stored = await flasher.get('k', ctx())
      expect(stored).toEqual(
        flasherWritesLast
          ? { data: { user: 'ada', notice: 'Saved!' }, meta: { ...meta, flash: ['notice'] } }
          : { data: { user: 'ada', a: 1 }, meta },
      )
    }
  })

  it('refuses a record over KV’s 25 MiB value limit with ERR_TOO_LARGE, before writing anything', async () => {
    const MAX = 25 * 1024 * 1024
    const prefix = freshPrefix()
    let puts = 0
    const counted: KvNamespace = {
      get: (key, options) => kv.get(key, options),
      put: (key, value, options) => {
        puts++
        return kv.put(key, value, options)
      },
      delete: (key) => kv.delete(key),
      list: (options) => kv.list(options),
    }
    const store = cloudflareKvStore({ namespace: counted, prefix })
    const overhead = JSON.stringify(record({ big: '' })).length
    const tooLarge = (error: unknown) =>
      isSessionError(error, 'ERR_TOO_LARGE') && /25 MiB/.test(error.message)

    // One byte over, in ASCII; and in two-byte UTF-8, where the string is far shorter than its byte size.
    await expect(
      store.set('k', record({ big: 'x'.repeat(MAX - overhead + 1) }), 60_000, ctx()),
    ).rejects.toSatisfy(tooLarge)
    const twoByte = 'ż'.repeat(Math.floor((MAX - overhead) / 2) + 1)
    await expect(store.set('k', record({ big: twoByte }), 60_000, ctx())).rejects.toSatisfy(tooLarge)
    expect(puts).toBe(0)

    // A patch that would grow the record past the limit writes nothing either.
    await store.set('k', record({ small: 1 }), 60_000, ctx())
    const meta = record({}).meta
    await expect(
      store.patch('k', { set: { big: twoByte }, delete: [], flash: [], meta }, 60_000, ctx()),
    ).rejects.toSatisfy(tooLarge)
    // A regenerate into a record too large keeps the old one: nothing deleted, nothing written.
    await expect(store.set('new', record({ big: twoByte }), 60_000, ctx(), 'k')).rejects.toSatisfy(tooLarge)
    expect(puts).toBe(1)
    await expect(store.get('k', ctx())).resolves.toEqual(record({ small: 1 }))
    await expect(store.get('new', ctx())).resolves.toBeNull()

    // Exactly at the limit is KV's to keep.
    await expect(store.set('max', record({ big: 'x'.repeat(MAX - overhead) }), 60_000, ctx())).resolves.toBe(
      true,
    )
    expect((await store.get('max', ctx()))?.data.big).toHaveLength(MAX - overhead)
  })

  it('lets KV errors reach the sessions layer', async () => {
    const failure = new Error('KV GET failed: 503')
    const failing: KvNamespace = {
      get: () => Promise.reject(failure),
      put: (key, value, options) => kv.put(key, value, options),
      delete: (key) => kv.delete(key),
      list: (options) => kv.list(options),
    }
    const store = cloudflareKvStore({ namespace: failing })
    await expect(store.get('x', ctx())).rejects.toBe(failure)
    await expect(
      store.patch('x', { set: {}, delete: [], flash: [], meta: record({}).meta }, 60_000, ctx()),
    ).rejects.toBe(failure)
  })

  // Each test waits out KV's one-second window: run them side by side (each has its own prefix).
  describe.concurrent('KV refusing a second write to a key within a second (429)', () => {
    /** `kv`, except that the next `failures` writes (puts and deletes) are refused as Cloudflare refuses them. */
    function rateLimited(failures: number) {
      const log: string[] = []
      const refuse = (op: string) => {
        if (failures <= 0) return false
        failures--
        log.push(`429 ${op}`)
        return true
      }
      const namespace: KvNamespace = {
        get: (key, options) => kv.get(key, options),
        put: async (key, value, options) => {
          if (refuse('put')) throw new Error('KV PUT failed: 429 Too Many Requests')
          log.push('put')
          return kv.put(key, value, options)
        },
        delete: async (key) => {
          if (refuse('delete')) throw new Error('KV DELETE failed: 429 Too Many Requests')
          log.push('delete')
          return kv.delete(key)
        },
        list: (options) => kv.list(options),
      }
      return { namespace, log }
    }

    it('waits a second and redoes a patch, re-reading what another request wrote meanwhile', async ({
      expect,
    }) => {
      const prefix = freshPrefix()
      const { namespace, log } = rateLimited(1)
      const store = cloudflareKvStore({ namespace, prefix })
      await cloudflareKvStore({ namespace: kv, prefix }).set('k', record({ user: 'ada' }), 60_000, ctx())

      const started = Date.now()
      const patched = store.patch(
        'k',
        { set: { a: 1 }, delete: [], flash: [], meta: record({}).meta },
        60_000,
        ctx(),
      )
      // The write that got in first: the other request's change.
      await cloudflareKvStore({ namespace: kv, prefix }).patch(
        'k',
        { set: { b: 1 }, delete: [], flash: [], meta: record({}).meta },
        60_000,
        ctx(),
      )
      await expect(patched).resolves.toBe(true)
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_000)
      expect(log).toEqual(['429 put', 'put'])
      await expect(store.get('k', ctx())).resolves.toEqual(record({ user: 'ada', a: 1, b: 1 }))
    })

    it('redoes a refused delete, so a logout right after a write still lands', async ({ expect }) => {
      const prefix = freshPrefix()
      const { namespace, log } = rateLimited(1)
      const store = cloudflareKvStore({ namespace, prefix })
      await cloudflareKvStore({ namespace: kv, prefix }).set('k', record({}), 60_000, ctx())
      await store.delete('k', ctx())
      expect(log).toEqual(['429 delete', 'delete'])
      expect(await listed(prefix)).toEqual([])
    })

    it('redoes only the refused half of a regenerate', async ({ expect }) => {
      const prefix = freshPrefix()
      const { namespace, log } = rateLimited(1)
      const store = cloudflareKvStore({ namespace, prefix })
      await cloudflareKvStore({ namespace: kv, prefix }).set('old', record({ user: 'ada' }), 60_000, ctx())
      await expect(store.set('new', record({ user: 'ada' }), 60_000, ctx(), 'old')).resolves.toBe(true)
      expect(log.filter((entry) => entry === 'put')).toHaveLength(1)
      expect(log.filter((entry) => entry === 'delete')).toHaveLength(1)
      expect((await listed(prefix)).map((entry) => entry.name)).toEqual([`${prefix}new`])
    })

    it('gives up after three attempts', async ({ expect }) => {
      const prefix = freshPrefix()
      const { namespace, log } = rateLimited(3)
      const store = cloudflareKvStore({ namespace, prefix })
      await expect(store.set('k', record({}), 60_000, ctx())).rejects.toThrow('429 Too Many Requests')
      expect(log).toEqual(['429 put', '429 put', '429 put'])
      expect(await listed(prefix)).toEqual([])
    })

    it('stops waiting when the sessions layer gives up (storeTimeout)', async ({ expect }) => {
      const prefix = freshPrefix()
      const { namespace, log } = rateLimited(1)
      const store = cloudflareKvStore({ namespace, prefix })
      const controller = new AbortController()
      const started = Date.now()
      const write = store.set('k', record({}), 60_000, { env: {}, signal: controller.signal })
      setTimeout(() => controller.abort(new Error('storeTimeout')), 50)
      await expect(write).rejects.toThrow('storeTimeout')
      expect(Date.now() - started).toBeLessThan(900)
      expect(log).toEqual(['429 put'])
      expect(await listed(prefix)).toEqual([])
    })
  })

  describe('the user index', () => {
    const bound = (user: string, handle: string, data: Record<string, unknown> = {}): SessionRecord => ({
      data,
      meta: { ...record({}).meta, handle, user: { id: `id-${user}`, key: user, agent: null, label: null } },
    })

    it('reads many records in order, null where missing or damaged', async () => {
      const prefix = freshPrefix()
      const store = cloudflareKvStore({ namespace: kv, prefix })
      await store.set('a', record({ n: 1 }), 60_000, ctx())
      await store.set('c', record({ n: 3 }), 60_000, ctx())
      await kv.put(`${prefix}d`, 'not json', { expirationTtl: 60, metadata: { expiresAt: 0 } })
      await expect(store.getMany?.(['c', 'b', 'a', 'd'], ctx())).resolves.toEqual([
        record({ n: 3 }),
        null,
        record({ n: 1 }),
        null,
      ])
    })

    it('revokes only the sessions of the user it names, and counts each once', async () => {
      const prefix = freshPrefix()
      const store = cloudflareKvStore({ namespace: kv, prefix })
      await store.set('a1', bound('A', 'ha1'), 60_000, ctx())
      await store.set('a2', bound('A', 'ha2'), 60_000, ctx())
      await store.set('b1', bound('B', 'hb1'), 60_000, ctx())
      await store.set('anon', record({}), 60_000, ctx())
      await expect(store.revokeUser?.('A', ['a1', 'b1', 'anon', 'a1', 'gone'], ctx())).resolves.toBe(1)
      await expect(store.get('a1', ctx())).resolves.toBeNull()
      await expect(store.get('b1', ctx())).resolves.toEqual(bound('B', 'hb1'))
      await expect(store.get('anon', ctx())).resolves.toEqual(record({}))
      await expect(store.userEntries?.('A', ctx())).resolves.toEqual([{ key: 'a2', handle: 'ha2' }])
      await expect(store.userEntries?.('B', ctx())).resolves.toEqual([{ key: 'b1', handle: 'hb1' }])
      await expect(store.countUsers?.(ctx())).resolves.toBe(2)
      await expect(store.count?.(ctx())).resolves.toBe(3)
    })

    it('revokes a record this location does not see yet: deleting a missing key is harmless', async () => {
      const prefix = freshPrefix()
      await cloudflareKvStore({ namespace: kv, prefix }).set('a1', bound('A', 'ha1'), 60_000, ctx())
      // A location whose reads still miss the record, written elsewhere a moment ago.
      const behind: KvNamespace = {
        get: async (key, options) => (key === `${prefix}a1` ? null : kv.get(key, options)),
        put: (key, value, options) => kv.put(key, value, options),
        delete: (key) => kv.delete(key),
        list: (options) => kv.list(options),
      }
      const store = cloudflareKvStore({ namespace: behind, prefix })
      // Not counted (it could not be told from a missing one), but gone with its entry.
      await expect(store.revokeUser?.('A', ['a1'], ctx())).resolves.toBe(0)
      expect(await listed(prefix)).toEqual([])
    })

    it('moves the entry with a regenerate and removes it with a delete naming it', async () => {
      const prefix = freshPrefix()
      const store = cloudflareKvStore({ namespace: kv, prefix })
      await store.set('old', bound('A', 'h1'), 60_000, ctx())
      await expect(store.set('new', bound('A', 'h2'), 60_000, ctx(), 'old')).resolves.toBe(true)
      expect((await listed(prefix)).map((entry) => entry.name).sort()).toEqual([
        `${prefix}new`,
        `${prefix}u:A:new`,
      ])
      await store.delete('new', { ...ctx(), user: { user: 'A', handle: 'h2' } })
      expect(await listed(prefix)).toEqual([])
    })

    it('writes the entry again when a regenerate that landed is retried', async () => {
      const prefix = freshPrefix()
      const store = cloudflareKvStore({ namespace: kv, prefix })
      await store.set('old', bound('A', 'h1'), 60_000, ctx())
      // The first attempt's record landed and the old one went, but its entry did not.
      await kv.put(`${prefix}new`, JSON.stringify(bound('A', 'h2')), {
        expirationTtl: 60,
        metadata: { expiresAt: 0 },
      })
      await kv.delete(`${prefix}old`)
      await kv.delete(`${prefix}u:A:old`)
      await expect(store.set('new', bound('A', 'h2'), 60_000, ctx(), 'old')).resolves.toBe(true)
      await expect(store.userEntries?.('A', ctx())).resolves.toEqual([{ key: 'new', handle: 'h2' }])
    })

    it('a patch writes the entry after its record, with the record’s TTL, and never for a missing record', async () => {
      const prefix = freshPrefix()
      const { namespace, log } = (() => {
        const log: string[] = []
        const namespace: KvNamespace = {
          get: (key, options) => kv.get(key, options),
          put: async (key, value, options) => {
            log.push(`put ${key.slice(prefix.length)} ${options.expirationTtl}`)
            return kv.put(key, value, options)
          },
          delete: (key) => kv.delete(key),
          list: (options) => kv.list(options),
        }
        return { namespace, log }
      })()
      const store = cloudflareKvStore({ namespace, prefix })
      await store.set('k', bound('A', 'h'), 60_000, ctx())
      log.length = 0
      const meta = { ...record({}).meta, expiresAt: 77 }
      await expect(
        store.patch('k', { set: { a: 1 }, delete: [], flash: [], meta }, 90_000, ctx()),
      ).resolves.toBe(true)
      expect(log).toEqual(['put k 90', 'put u:A:k 90'])
      const entry = (await listed(`${prefix}u:`))[0]
      expect(entry?.metadata).toEqual({ handle: 'h', expiresAt: 77 })
      log.length = 0
      await expect(
        store.patch('missing', { set: { a: 1 }, delete: [], flash: [], meta }, 90_000, ctx()),
      ).resolves.toBe(false)
      expect(log).toEqual([])
    })

    it('pages through the index: a user whose entries span pages is listed whole and counted once', async () => {
      const prefix = 'p:'
      // A namespace whose list answers two keys a page, as KV answers 1000.
      const names = ['p:u:A:1', 'p:u:A:2', 'p:u:A:3', 'p:u:B:1', 'p:u:C:1', 'p:u:C:2']
      let lists = 0
      const paged: KvNamespace = {
        get: async () => null,
        put: async () => {},
        delete: async () => {},
        list: async ({ prefix: wanted, cursor }) => {
          lists++
          const matching = names.filter((name) => name.startsWith(wanted))
          const start = Number(cursor ?? 0)
          const keys = matching
            .slice(start, start + 2)
            .map((name) => ({ name, metadata: { handle: `h${name.slice(-3)}`, expiresAt: 0 } }))
          const complete = start + 2 >= matching.length
          return complete
            ? { keys, list_complete: true }
            : { keys, list_complete: false, cursor: String(start + 2) }
        },
      }
      const store = cloudflareKvStore({ namespace: paged, prefix })
      await expect(store.countUsers?.(ctx())).resolves.toBe(3)
      expect(lists).toBe(3)
      await expect(store.userEntries?.('A', ctx())).resolves.toEqual([
        { key: '1', handle: 'hA:1' },
        { key: '2', handle: 'hA:2' },
        { key: '3', handle: 'hA:3' },
      ])
      await expect(store.count?.(ctx())).resolves.toBe(0)
    })
  })

  it('states its limits to the sessions layer', () => {
    const store = cloudflareKvStore({ namespace: kv })
    expect(store.name).toBe('cloudflare-kv')
    expect(store.minTtl).toBe(60_000)
    expect(store.minTouchInterval).toBe(60_000)
    // No TTL-only update in KV: the sessions layer touches with a (rewriting) patch.
    expect(store.touch).toBeUndefined()
  })

  it('refuses an idleTimeout its touch floor cannot keep alive: at least max(touchInterval, 60) + 60 seconds', () => {
    const store = cloudflareKvStore({ namespace: kv })
    const validate = (idleTimeout: number, touchInterval: number) => () =>
      store.validate?.({ absoluteTimeout: 86_400, idleTimeout, touchInterval })
    // touchInterval under KV's 60 s floor: a touch at most every 60 s, so at least 120 s.
    for (const touchInterval of [0, 10, 60]) {
      expect(configError(validate(60, touchInterval))).toMatch(
        /^cloudflareKvStore\(\): idleTimeout must be at least 120 seconds, got 60: KV touches a session at most every 60 s/,
      )
      expect(configError(validate(119.5, touchInterval))).toMatch(/at least 120 seconds/)
      expect(configError(validate(120, touchInterval))).toBe('no error')
    }
    // A longer touchInterval moves the floor with it.
    expect(configError(validate(359, 300))).toMatch(
      /at least 360 seconds, got 359: KV touches a session at most every 300 s/,
    )
    expect(configError(validate(360, 300))).toBe('no error')
  })

  it('rejects a bad configuration when created', () => {
    expect(configError(() => cloudflareKvStore({ namespace: undefined as unknown as KvNamespace }))).toMatch(
      /namespace/,
    )
    expect(configError(() => cloudflareKvStore({ namespace: {} as KvNamespace }))).toMatch(/namespace/)
    expect(configError(() => cloudflareKvStore({ namespace: kv, prefix: 'x'.repeat(424) }))).toMatch(
      /at most 423 bytes/,
    )
    expect(configError(() => cloudflareKvStore({ namespace: kv, prefix: 'x'.repeat(423) }))).toBe('no error')
  })

  it('keeps the longest allowed prefix within the 512-byte KV key limit, user-index entries included', async () => {
    const prefix = `${freshPrefix()}`.padEnd(423, 'x')
    const store = cloudflareKvStore({ namespace: kv, prefix })
    const hashedId = 'A'.repeat(43)
    const user = { id: 'ada', key: 'U'.repeat(43), agent: null, label: null }
    const bound = { data: {}, meta: { ...record({}).meta, handle: 'H'.repeat(22), user } }
    await expect(store.set(hashedId, bound, 60_000, ctx())).resolves.toBe(true)
    await expect(store.get(hashedId, ctx())).resolves.toEqual(bound)
    // The longest key the store writes: `<prefix>u:<user key>:<hashed id>`, exactly KV's 512 bytes.
    const names = (await listed(prefix)).map((entry) => entry.name)
    expect(names.map((name) => name.length).sort()).toEqual([423 + 43, 512])
    await expect(store.userEntries?.(user.key, ctx())).resolves.toEqual([
      { key: hashedId, handle: 'H'.repeat(22) },
    ])
  })
})
