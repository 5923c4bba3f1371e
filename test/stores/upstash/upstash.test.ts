/** @module upstashStore() against a real redis-server, through the local Upstash REST endpoint. */
import type { Redis } from '@upstash/redis'
import { Redis as CloudflareRedis } from '@upstash/redis/cloudflare'
import { createSessions, type SessionsOptions } from 'edge-session'
import { upstashStore } from 'edge-session/stores/upstash'
import { describe, expect, it } from 'vitest'
import { describeStoreConformance, storageKey } from '../../shared/conformance.ts'
import {
  bound,
  boundRecord,
  ctx,
  expectAbortedCallsRefused,
  expectEveryKeyKept,
  expectFlashKeptFromRacingRequests,
  expectLegacyFlashList,
  expectNoneOf,
  expectNoUserIdInKeyNames,
  expectOneRoundTripAndCommandEach,
  expectRecordWithoutHandleWorks,
  expectRevokeOnlyTheUsers,
  expectSessionHash,
  expectUserLayout,
  expectUserSetsExpireWithSessions,
  HOUR,
  measureEach,
  meta,
  newKey,
  oneRequestOfEach,
  patch,
  perUserSteps,
  type RedisView,
  ROUND_TRIP_BUDGET,
  record,
  rejection,
  SCRIPT_TEXT,
  USER_ROUND_TRIP_BUDGET,
  userCtx,
} from '../../shared/redis-checks.ts'
import { CookieJar } from '../../support/jar.ts'
import { RespStatus } from '../../support/resp.ts'
import { useLocalUpstash } from '../../support/use-local-upstash.ts'

const local = useLocalUpstash()

let prefixes = 0
describeStoreConformance({
  name: 'upstash',
  kind: 'server',
  // A fresh prefix per test: its own key space, and its own live set to count.
  createStore: () => upstashStore({ redis: local.client(), prefix: `conformance-${++prefixes}:` }),
  realTimeExpiry: true,
})

/** Redis's view of a hash, fields to text. */
async function hash(key: string): Promise<Record<string, string>> {
  const reply = await local.direct('HGETALL', key)
  const fields: Record<string, string> = {}
  if (!Array.isArray(reply)) throw new Error('not an array')
  for (let i = 0; i < reply.length; i += 2) fields[String(reply[i])] = String(reply[i + 1])
  return fields
}

const pttl = async (key: string) => Number(await local.direct('PTTL', key))

/** Redis read directly, past the endpoint. */
const direct: RedisView = {
  async type(key) {
    const reply = await local.direct('TYPE', key)
    return reply instanceof RespStatus ? reply.value : String(reply)
  },
  hash,
  pttl,
  run: (...args) => local.direct(...args),
}

/** For `measureEach`: [requests, commands] the endpoint served during each step. */
const requestsAndCommands = async () => {
  local.endpoint.resetCounts()
  return (): [number, number] => [local.endpoint.requestCount, local.endpoint.commandCount]
}

/** Every value shape a session may hold, with the strings a parsing client would mangle. */
const tricky: Record<string, unknown> = {
  decimalString: '1.5',
  integerString: '42',
  hugeIntegerString: '123456789012345678901234567890',
  jsonObjectString: '{"a":1}',
  jsonArrayString: '[1,2]',
  trueString: 'true',
  nullString: 'null',
  quotedString: '"quoted"',
  empty: '',
  spaces: '  7  ',
  unicode: 'héllo ✓ 🎉 \u0000 end',
  number: 1.5,
  integer: 42,
  negative: -0.25,
  big: 2 ** 53 - 1,
  zero: 0,
  yes: true,
  no: false,
  nothing: null,
  nested: { a: { b: [1, '2', { c: null, d: '1.5' }] }, 'x:y': true },
  list: ['a', 1, false, null, { k: 'v' }],
  emptyObject: {},
  emptyList: [],
  __proto__key: 'no prototype games',
}
// A data key literally named "__proto__" must stay data.
Object.defineProperty(tricky, '__proto__', { value: { polluted: true }, enumerable: true })

describe.each([
  ['default options', {}],
  ['automaticDeserialization: false', { automaticDeserialization: false }],
  ['responseEncoding: false (no base64)', { responseEncoding: false as const }],
  ['auto-pipelining off', { enableAutoPipelining: false }],
])('values round-trip exactly with a client with %s', (_, options) => {
  it('through set and get', async () => {
    const store = upstashStore({ redis: local.client(options) })
    const key = newKey()
    expect(await store.set(key, record(tricky, { flash: ['decimalString'] }), HOUR, ctx())).toBe(true)
    const read = await store.get(key, ctx())
    expect(read).toEqual(record(tricky, { flash: ['decimalString'] }))
    expect(Object.getPrototypeOf(read?.data)).toBeNull()
    expect(Object.hasOwn(read?.data ?? {}, '__proto__')).toBe(true)
    expect(read?.data.decimalString).toBe('1.5')
    expect(read?.data.jsonObjectString).toBe('{"a":1}')
  })

  it('through patch and get', async () => {
    const store = upstashStore({ redis: local.client(options) })
    const key = newKey()
    await store.set(key, record({ keep: 'me' }), HOUR, ctx())
    expect(await store.patch(key, patch(tricky), HOUR, ctx())).toBe(true)
    expect((await store.get(key, ctx()))?.data).toEqual({ keep: 'me', ...tricky })
  })
})

describe('upstashStore', () => {
  it('is a server store named upstash that can touch, count, and keep sessions per user', () => {
    const store = upstashStore({ redis: local.client() })
    expect(store.kind).toBe('server')
    expect(store.name).toBe('upstash')
    for (const method of ['touch', 'count', 'userEntries', 'getMany', 'revokeUser', 'countUsers'] as const)
      expect(typeof store[method], method).toBe('function')
  })

  it('rejects a missing client or a bad prefix at creation with ERR_CONFIG, named as every store names it', () => {
    const config = (message: RegExp) =>
      expect.objectContaining({
        name: 'SessionError',
        code: 'ERR_CONFIG',
        message: expect.stringMatching(message),
      })
    expect(() => upstashStore({ redis: undefined as unknown as Redis })).toThrow(
      config(/^upstashStore\(\): needs an @upstash\/redis client as `redis`$/),
    )
    expect(() => upstashStore({ redis: {} as Redis })).toThrow(config(/^upstashStore\(\): /))
    const { hgetall, eval: evaluate } = local.client()
    expect(() => upstashStore({ redis: { hgetall, eval: evaluate } as Redis })).toThrow(
      config(/^upstashStore\(\): /),
    )
    expect(() => upstashStore({ redis: local.client(), prefix: 7 as unknown as string })).toThrow(
      config(/^upstashStore\(\): prefix must be a string, got number$/),
    )
  })

  it('keeps a session as a hash under prefix + key: a field per data key, metadata fields, TTL as given', async () => {
    const store = upstashStore({ redis: local.client(), prefix: 'app:s:' })
    const key = await expectSessionHash(store, 'app:s:', direct)
    expect(await local.direct('KEYS', '*')).toEqual(
      expect.arrayContaining([Buffer.from(`app:s:${key}`), Buffer.from('app:s:#live')]),
    )
  })

  it('uses the prefix sess: by default', async () => {
    const store = upstashStore({ redis: local.client() })
    const key = newKey()
    await store.set(key, record({}), HOUR, ctx())
    expect(await local.direct('EXISTS', `sess:${key}`)).toBe(1)
  })

  it('copies the metadata without judging it: a record past its expiresAt is still returned until its TTL', async () => {
    const store = upstashStore({ redis: local.client() })
    const key = newKey()
    await store.set(key, record({ a: 1 }, { expiresAt: 1 }), HOUR, ctx())
    expect(await store.get(key, ctx())).toEqual(record({ a: 1 }, { expiresAt: 1 }))
  })

  it('returns null for a missing key, and for a hash it did not write', async () => {
    const store = upstashStore({ redis: local.client() })
    expect(await store.get(newKey(), ctx())).toBeNull()
    const key = newKey()
    await local.direct('HSET', `sess:${key}`, 'd:user', 'plain text', 'm:createdAt', '1')
    expect(await store.get(key, ctx())).toBeNull()
    const noMeta = newKey()
    await local.direct('HSET', `sess:${noMeta}`, 'd:user', 'j"ada"')
    expect(await store.get(noMeta, ctx())).toBeNull()
  })

  it('set replaces a whole record: fields of the old one are gone', async () => {
    const store = upstashStore({ redis: local.client() })
    const key = newKey()
    await store.set(key, record({ a: 1, b: 2 }, { flash: ['a'] }), HOUR, ctx())
    await store.set(key, record({ c: 3 }), HOUR, ctx())
    expect(await store.get(key, ctx())).toEqual(record({ c: 3 }))
    expect(Object.keys(await hash(`sess:${key}`)).sort()).toEqual([
      'd:c',
      'm:createdAt',
      'm:expiresAt',
      'm:lastSeenAt',
    ])
  })

  it('keeps sessions with many keys (Lua argument slicing)', async () => {
    const store = upstashStore({ redis: local.client() })
    const key = newKey()
    const data = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, i]))
    await store.set(key, record(data), HOUR, ctx())
    expect((await store.get(key, ctx()))?.data).toEqual(data)
    const removed = Array.from({ length: 9_000 }, (_, i) => `k${i}`)
    const added = Object.fromEntries(Array.from({ length: 5_000 }, (_, i) => [`n${i}`, `v${i}`]))
    expect(await store.patch(key, patch(added, removed), HOUR, ctx())).toBe(true)
    const read = await store.get(key, ctx())
    expect(Object.keys(read?.data ?? {})).toHaveLength(1_000 + 5_000)
    expect(read?.data.k9999).toBe(9999)
    expect(read?.data.n4999).toBe('v4999')
  })

  describe('patch', () => {
    it('sets and deletes only the given keys, replaces the metadata and the TTL', async () => {
      const store = upstashStore({ redis: local.client() })
      const key = newKey()
      await store.set(key, record({ a: 1, b: 2, c: 3 }, { flash: ['c'] }), 60_000, ctx())
      const newMeta = { lastSeenAt: 946_684_900_000, expiresAt: 946_686_700_000 }
      expect(await store.patch(key, patch({ b: 'two', d: [4] }, ['c'], newMeta), HOUR, ctx())).toBe(true)
      expect(await store.get(key, ctx())).toEqual(record({ a: 1, b: 'two', d: [4] }, newMeta))
      expect('f:c' in (await hash(`sess:${key}`))).toBe(false)
      expect(await pttl(`sess:${key}`)).toBeGreaterThan(HOUR - 5_000)
    })

    it('never recreates a deleted record', async () => {
      const store = upstashStore({ redis: local.client() })
      const key = newKey()
      await store.set(key, record({ a: 1 }), HOUR, ctx())
      await store.delete(key, ctx())
      expect(await store.patch(key, patch({ b: 2 }), HOUR, ctx())).toBe(false)
      expect(await local.direct('EXISTS', `sess:${key}`)).toBe(0)
      expect(await store.get(key, ctx())).toBeNull()
    })

    it('never recreates an expired record', async () => {
      const store = upstashStore({ redis: local.client() })
      const key = newKey()
      await store.set(key, record({ a: 1 }), 30, ctx())
      await new Promise((resolve) => setTimeout(resolve, 80))
      expect(await store.patch(key, patch({ b: 2 }), HOUR, ctx())).toBe(false)
      expect(await local.direct('EXISTS', `sess:${key}`)).toBe(0)
      expect(await store.count?.(ctx())).toBe(0)
    })

    it('keeps every key of 100 concurrent patches of one record', async () => {
      for (const options of [{}, { enableAutoPipelining: false }]) {
        const store = upstashStore({ redis: local.client(options) })
        const key = newKey()
        await store.set(key, record({ first: 0 }), HOUR, ctx())
        const results = await Promise.all(
          Array.from({ length: 100 }, (_, i) => store.patch(key, patch({ [`k${i}`]: i }), HOUR, ctx())),
        )
        expect(results.every((result) => result === true)).toBe(true)
        const data = (await store.get(key, ctx()))?.data ?? {}
        expect(Object.keys(data)).toHaveLength(101)
        for (let i = 0; i < 100; i++) expect(data[`k${i}`]).toBe(i)
      }
    })
  })

  describe('touch', () => {
    it('extends the TTL and rewrites the times, never the data nor the flash markers', async () => {
      const store = upstashStore({ redis: local.client() })
      const key = newKey()
      await store.set(key, record({ a: 1 }, { flash: ['a'] }), 60_000, ctx())
      // Another writer changes the data after this request read it: the touch must not undo that.
      await store.patch(key, patch({ a: 2, b: 3 }, [], { flash: ['a'] }), 60_000, ctx())
      local.endpoint.resetCounts()
      const touched = { lastSeenAt: 946_685_000_000, expiresAt: 946_686_800_000 }
      expect(await store.touch?.(key, meta(touched), HOUR, ctx())).toBe(true)
      expect(await store.get(key, ctx())).toEqual(record({ a: 2, b: 3 }, { ...touched, flash: ['a'] }))
      expect(await pttl(`sess:${key}`)).toBeGreaterThan(HOUR - 5_000)
      // The keys and arguments sent (after the command, the script or its SHA-1, and the number of keys).
      const sent = local.endpoint.requests[0]?.commands[0]?.slice(3) ?? []
      expect(sent).toContain('m:lastSeenAt')
      expect(sent.filter((arg) => /^[df]:/.test(arg))).toEqual([])
    })

    it('resolves false and writes nothing for a missing record', async () => {
      const store = upstashStore({ redis: local.client() })
      const key = newKey()
      expect(await store.touch?.(key, meta(), HOUR, ctx())).toBe(false)
      expect(await local.direct('EXISTS', `sess:${key}`)).toBe(0)
    })
  })

  describe('set with replaces (regenerate)', () => {
    it('writes the new record and deletes the old one', async () => {
      const store = upstashStore({ redis: local.client() })
      const [oldKey, key] = [newKey(), newKey()]
      await store.set(oldKey, record({ a: 1 }), HOUR, ctx())
      expect(await store.set(key, record({ a: 1, b: 2 }), HOUR, ctx(), oldKey)).toBe(true)
      expect(await store.get(oldKey, ctx())).toBeNull()
      expect(await store.get(key, ctx())).toEqual(record({ a: 1, b: 2 }))
      expect(await store.count?.(ctx())).toBe(1)
    })

    it('writes nothing when the old record is gone (a concurrent destroy stands)', async () => {
      const store = upstashStore({ redis: local.client() })
      const [oldKey, key] = [newKey(), newKey()]
      await store.set(oldKey, record({ a: 1 }), HOUR, ctx())
      await store.delete(oldKey, ctx())
      expect(await store.set(key, record({ a: 1 }), HOUR, ctx(), oldKey)).toBe(false)
      expect(await local.direct('EXISTS', `sess:${key}`)).toBe(0)
      expect(await store.count?.(ctx())).toBe(0)
    })
  })

  describe('count', () => {
    it('counts live sessions per prefix, following sets, regenerates and deletes', async () => {
      const store = upstashStore({ redis: local.client() })
      const other = upstashStore({ redis: local.client(), prefix: 'other:' })
      expect(await store.count?.(ctx())).toBe(0)
      const keys = [newKey(), newKey(), newKey()]
      for (const key of keys) await store.set(key, record({}), HOUR, ctx())
      await other.set(newKey(), record({}), HOUR, ctx())
      expect(await store.count?.(ctx())).toBe(3)
      expect(await other.count?.(ctx())).toBe(1)
      await store.patch(keys[0] as string, patch({ a: 1 }), HOUR, ctx())
      await store.touch?.(keys[1] as string, meta(), HOUR, ctx())
      expect(await store.count?.(ctx())).toBe(3)
      await store.delete(keys[2] as string, ctx())
      expect(await store.count?.(ctx())).toBe(2)
    })

    it('prunes sessions whose TTL ran out, and scores by Redis time + TTL', async () => {
      const store = upstashStore({ redis: local.client() })
      const [short, long] = [newKey(), newKey()]
      await store.set(short, record({}), 40, ctx())
      await store.set(long, record({}), HOUR, ctx())
      const time = (await local.direct('TIME')) as Buffer[]
      const redisNow = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000)
      const score = Number(await local.direct('ZSCORE', 'sess:#live', long))
      expect(score).toBeGreaterThan(redisNow + HOUR - 5_000)
      expect(score).toBeLessThanOrEqual(redisNow + HOUR)
      expect(await store.count?.(ctx())).toBe(2)
      await new Promise((resolve) => setTimeout(resolve, 100))
      expect(await store.count?.(ctx())).toBe(1)
      expect(await local.direct('ZCARD', 'sess:#live')).toBe(1)
      expect(await local.direct('ZSCORE', 'sess:#live', short)).toBeNull()
    })

    it('lets the live set expire with its last session', async () => {
      const store = upstashStore({ redis: local.client() })
      await store.set(newKey(), record({}), 60_000, ctx())
      await store.set(newKey(), record({}), 30_000, ctx())
      const ttl = await pttl('sess:#live')
      expect(ttl).toBeGreaterThan(55_000)
      expect(ttl).toBeLessThanOrEqual(60_000)
    })
  })

  it('costs one round trip and one command per call', async () => {
    const store = upstashStore({ redis: local.client() })
    await expectOneRoundTripAndCommandEach(store, requestsAndCommands)
  })

  it('writes nothing when a key holds something else (no half-applied script)', async () => {
    const store = upstashStore({ redis: local.client() })
    const [oldKey, key] = [newKey(), newKey()]
    await store.set(oldKey, record({ a: 1 }), HOUR, ctx())
    await local.direct('DEL', 'sess:#live')
    await local.direct('SET', 'sess:#live', 'not a sorted set')
    await expect(store.set(key, record({ b: 2 }), HOUR, ctx(), oldKey)).rejects.toThrow(/WRONGTYPE/)
    await expect(store.patch(oldKey, patch({ b: 2 }), HOUR, ctx())).rejects.toThrow(/WRONGTYPE/)
    await expect(store.delete(oldKey, ctx())).rejects.toThrow(/WRONGTYPE/)
    expect(await store.get(oldKey, ctx())).toEqual(record({ a: 1 }))
    expect(await local.direct('EXISTS', `sess:${key}`)).toBe(0)
  })

  it('sends nothing when the signal is already aborted', async () => {
    const store = upstashStore({ redis: local.client() })
    await expectAbortedCallsRefused(store)
    expect(local.endpoint.requestCount).toBe(0)
  })

  it('rejects every call while the endpoint is down, and finds the data intact when it is back', async () => {
    const store = upstashStore({ redis: local.client({ retry: false }) })
    const key = newKey()
    await store.set(key, record({ a: 1, b: 'two' }), HOUR, ctx())
    await local.endpoint.stop()
    await expect(store.get(key, ctx())).rejects.toThrow()
    await expect(store.set(key, record({ lost: true }), HOUR, ctx())).rejects.toThrow()
    await expect(store.patch(key, patch({ a: 9 }), HOUR, ctx())).rejects.toThrow()
    await expect(store.touch?.(key, meta(), HOUR, ctx())).rejects.toThrow()
    await expect(store.delete(key, ctx())).rejects.toThrow()
    await expect(store.count?.(ctx())).rejects.toThrow()
    await local.endpoint.start()
    expect(await store.get(key, ctx())).toEqual(record({ a: 1, b: 'two' }))
    expect(await store.count?.(ctx())).toBe(1)
  })

  it('rides out a short outage with the client default retries', async () => {
    const store = upstashStore({ redis: local.client() })
    const key = newKey()
    await store.set(key, record({ a: 1 }), HOUR, ctx())
    await local.endpoint.stop()
    const read = store.get(key, ctx())
    setTimeout(() => void local.endpoint.start(), 300)
    expect(await read).toEqual(record({ a: 1 }))
  })

  it('works with the @upstash/redis/cloudflare client', async () => {
    const redis = new CloudflareRedis({ url: local.endpoint.url, token: local.endpoint.token })
    const store = upstashStore({ redis })
    const key = newKey()
    await store.set(key, record({ n: '1.5' }), HOUR, ctx())
    expect(await store.patch(key, patch({ m: { x: 1 } }), HOUR, ctx())).toBe(true)
    expect(await store.get(key, ctx())).toEqual(record({ n: '1.5', m: { x: 1 } }))
    expect(await store.count?.(ctx())).toBe(1)
  })
})

describe('createSessions over upstashStore', () => {
  const SECRET = 'upstash-test-secret-0123456789abcdefghijklmn'
  const IDLE = 1800

  function sessionsFor(options: Partial<SessionsOptions> = {}, clientOptions = {}) {
    return createSessions<Record<string, unknown>>({
      store: upstashStore({ redis: local.client(clientOptions) }),
      secrets: [SECRET],
      idleTimeout: IDLE,
      ...options,
    })
  }

  it('shares a session between two instances with separate clients', async () => {
    const [east, west] = [sessionsFor(), sessionsFor()]
    const jar = new CookieJar()
    const s1 = await east.load(jar.request())
    s1.set('user', 'ada')
    jar.update(await east.commit(s1, new Response()))
    const s2 = await west.load(jar.request())
    expect(s2.isNew).toBe(false)
    expect(s2.get('user')).toBe('ada')
    s2.set('cart', ['book'])
    jar.update(await west.commit(s2, new Response()))
    const s3 = await east.load(jar.request())
    expect(s3.id).toBe(s1.id)
    expect(s3.all()).toEqual({ user: 'ada', cart: ['book'] })
    expect(await east.count()).toBe(1)
    expect(await west.count()).toBe(1)
  })

  it('costs the round trips of the budget for each kind of request', async () => {
    let now = Date.UTC(2030, 0, 1)
    const sessions = sessionsFor({ now: () => now, touchInterval: 60 })
    const jar = new CookieJar()
    const requests = oneRequestOfEach(sessions, jar, () => {
      now += 61_000
    })
    const measured = await measureEach(requests, async () => {
      local.endpoint.resetCounts()
      return () => local.endpoint.requestCount
    })
    expect(measured).toEqual(ROUND_TRIP_BUDGET)
    expect(jar.cookies.size).toBe(0)
    expect(await sessions.count()).toBe(0)
  })

  it('keeps all 101 keys when 100 concurrent requests each add one', async () => {
    const sessions = sessionsFor()
    const jar = new CookieJar()
    const first = await sessions.load(jar.request())
    first.set('owner', 'ada')
    jar.update(await sessions.commit(first, new Response()))
    await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const session = await sessions.load(jar.request())
        session.set(`k${i}`, i)
        await sessions.commit(session, new Response())
      }),
    )
    const after = await sessions.load(jar.request())
    const expected: Record<string, unknown> = { owner: 'ada' }
    for (let i = 0; i < 100; i++) expected[`k${i}`] = i
    expect(after.all()).toEqual(expected)
  })

  it('stores sessions under prefix + hashed id, each with a TTL within the idle timeout', async () => {
    const sessions = sessionsFor()
    const ids: string[] = []
    for (let i = 0; i < 5; i++) {
      const session = await sessions.load(new Request('https://app.example/'))
      session.set('i', i)
      await sessions.commit(session, new Response())
      ids.push(session.id)
    }
    const keys = ((await local.direct('KEYS', 'sess:*')) as Buffer[])
      .map(String)
      .filter((k) => k !== 'sess:#live')
    expect(keys.sort()).toEqual(
      (await Promise.all(ids.map(async (id) => `sess:${await storageKey(id)}`))).sort(),
    )
    for (const id of ids) expect(keys.some((key) => key.includes(id))).toBe(false)
    for (const key of keys) {
      const ttl = await pttl(key)
      expect(ttl).toBeGreaterThan(0)
      expect(ttl).toBeLessThanOrEqual(IDLE * 1000)
    }
  })

  it('rejects with ERR_STORE while the endpoint is down, and finds the data intact when it is back', async () => {
    const sessions = sessionsFor({}, { retry: false })
    const jar = new CookieJar()
    const first = await sessions.load(jar.request())
    first.set('user', 'ada')
    jar.update(await sessions.commit(first, new Response()))
    const loaded = await sessions.load(jar.request())
    await local.endpoint.stop()
    await expect(sessions.load(jar.request())).rejects.toMatchObject({
      name: 'SessionError',
      code: 'ERR_STORE',
    })
    loaded.set('user', 'eve')
    await expect(sessions.commit(loaded, new Response())).rejects.toMatchObject({ code: 'ERR_STORE' })
    await expect(sessions.count()).rejects.toMatchObject({ code: 'ERR_STORE' })
    await local.endpoint.start()
    const after = await sessions.load(jar.request())
    expect(after.id).toBe(first.id)
    expect(after.get('user')).toBe('ada')
  })

  it('fails with ERR_STORE within storeTimeout while the client is still retrying', async () => {
    // Retries that take about a second in all, so the test can outwait them and leave no request behind.
    const sessions = sessionsFor({ storeTimeout: 300 }, { retry: { retries: 4, backoff: () => 250 } })
    const jar = new CookieJar()
    const first = await sessions.load(jar.request())
    first.set('user', 'ada')
    jar.update(await sessions.commit(first, new Response()))
    await local.endpoint.stop()
    const started = Date.now()
    await expect(sessions.load(jar.request())).rejects.toMatchObject({ code: 'ERR_STORE' })
    expect(Date.now() - started).toBeLessThan(1_000)
    await new Promise((resolve) => setTimeout(resolve, 1_500))
  })
})

describe('upstashStore: every key, flash markers', () => {
  it('keeps every string key, __proto__ included, on a whole write and on a patch', async () => {
    await expectEveryKeyKept(upstashStore({ redis: local.client() }))
  })

  it('reads a record written with the former flash list, and moves it to a field per marker', async () => {
    await expectLegacyFlashList(upstashStore({ redis: local.client() }), 'sess:', direct)
  })

  it('keeps a flash from requests that loaded before it and commit after it, in every order', async () => {
    const redis = local.client()
    await expectFlashKeptFromRacingRequests((now) =>
      createSessions({
        store: upstashStore({ redis }),
        secrets: ['flash-race-secret-0123456789abcdefghijklmn'],
        touchInterval: 60,
        now,
      }),
    )
  })
})

describe('upstashStore: scripts by SHA-1', () => {
  /** The bytes of each request's commands as the client sent them (JSON), and each request's first command. */
  const sent = () =>
    local.endpoint.requests.map((request) => ({
      bytes: Buffer.byteLength(JSON.stringify(request.commands)),
      command: request.commands[0]?.[0],
    }))

  it('sends a script whole once, then by its SHA-1 alone: a write is a short command', async () => {
    const store = upstashStore({ redis: local.client() })
    const key = newKey()
    await store.set(key, record({ a: 1 }), HOUR, ctx())
    local.endpoint.resetCounts()
    expect(await store.patch(key, patch({ b: 2 }), HOUR, ctx())).toBe(true)
    expect(await store.patch(key, patch({ c: 3 }), HOUR, ctx())).toBe(true)
    expect(await store.touch?.(key, meta(), HOUR, ctx())).toBe(true)
    const [whole, bySha, touch] = sent()
    expect([whole?.command, bySha?.command, touch?.command]).toEqual(['eval', 'evalsha', 'evalsha'])
    expect(whole?.bytes).toBeGreaterThan(1_000)
    expect(bySha?.bytes).toBeLessThan(400)
    expect(whole && bySha && whole.bytes - bySha.bytes).toBeGreaterThan(800)
    expect(JSON.stringify(local.endpoint.requests.slice(1))).not.toContain(SCRIPT_TEXT)
    expect(await store.get(key, ctx())).toEqual(record({ a: 1, b: 2, c: 3 }))
  })

  it('after SCRIPT FLUSH, a write still lands, at one extra round trip once', async () => {
    for (const options of [{}, { enableAutoPipelining: false }]) {
      const store = upstashStore({ redis: local.client(options) })
      const key = newKey()
      await store.set(key, record({ a: 1 }), HOUR, ctx())
      await store.patch(key, patch({ b: 2 }), HOUR, ctx())
      await local.direct('SCRIPT', 'FLUSH')
      local.endpoint.resetCounts()
      expect(await store.patch(key, patch({ c: 3 }), HOUR, ctx())).toBe(true)
      expect(sent().map((request) => request.command)).toEqual(['evalsha', 'eval'])
      local.endpoint.resetCounts()
      // Once per script: the patch script is cached again, the set script not yet.
      expect(await store.patch(key, patch({ d: 4 }), HOUR, ctx())).toBe(true)
      expect(await store.set(newKey(), record({}), HOUR, ctx())).toBe(true)
      expect(sent().map((request) => request.command)).toEqual(['evalsha', 'evalsha', 'eval'])
      local.endpoint.resetCounts()
      expect(await store.set(newKey(), record({}), HOUR, ctx())).toBe(true)
      expect(sent().map((request) => request.command)).toEqual(['evalsha'])
      expect(await store.get(key, ctx())).toEqual(record({ a: 1, b: 2, c: 3, d: 4 }))
    }
  })

  it('keeps the round-trip budget from a flushed script cache on: the whole script goes first', async () => {
    await local.direct('SCRIPT', 'FLUSH')
    let now = Date.UTC(2030, 0, 1)
    const sessions = createSessions<Record<string, unknown>>({
      store: upstashStore({ redis: local.client() }),
      secrets: ['budget-secret-0123456789abcdefghijklmnopqr'],
      touchInterval: 60,
      now: () => now,
    })
    const jar = new CookieJar()
    const measured = await measureEach(
      oneRequestOfEach(sessions, jar, () => {
        now += 61_000
      }),
      async () => {
        local.endpoint.resetCounts()
        return () => local.endpoint.requestCount
      },
    )
    expect(measured).toEqual(ROUND_TRIP_BUDGET)
  })
})

describe('upstashStore: sessions per user', () => {
  const SECRET = 'users-test-secret-0123456789abcdefghijklmno'
  const sessionsFor = (now: () => number = Date.now) =>
    createSessions<Record<string, unknown>>({
      store: upstashStore({ redis: local.client() }),
      secrets: [SECRET],
      touchInterval: 60,
      now,
    })

  it("keeps the handle and the user in the record, and an entry in the user's index on Redis's clock", async () => {
    await expectUserLayout(upstashStore({ redis: local.client(), prefix: 'app:s:' }), 'app:s:', direct)
  })

  it('puts no user id in any key name (SCAN after logins)', async () => {
    await expectNoUserIdInKeyNames(sessionsFor(), 'sess:', direct)
  })

  it('lets the user index and the users set expire with their sessions', async () => {
    await expectUserSetsExpireWithSessions(upstashStore({ redis: local.client() }), 'sess:', direct)
  })

  it("revokes only that user's records among the keys it is given", async () => {
    await expectRevokeOnlyTheUsers(upstashStore({ redis: local.client() }))
  })

  it('opens a record written before handles, and logs it in', async () => {
    await expectRecordWithoutHandleWorks(sessionsFor(), 'sess:', direct, storageKey)
  })

  it('costs the round trips of the budget for each per-user request', async () => {
    let now = Date.UTC(2030, 0, 1)
    const sessions = sessionsFor(() => now)
    const steps = await perUserSteps(sessions, new CookieJar(), () => {
      now += 61_000
    })
    const measured = await measureEach(steps, async () => {
      local.endpoint.resetCounts()
      return () => local.endpoint.requestCount
    })
    expect(measured).toEqual(USER_ROUND_TRIP_BUDGET)
  })

  it('lists, counts and counts users while Redis refuses writes (the pruning is housekeeping)', async () => {
    const store = upstashStore({ redis: local.client() })
    const ada = bound()
    const [entry, lapsing] = [ada.entry(), ada.entry()]
    const [key, short] = [newKey(), newKey()]
    await store.set(key, boundRecord({ a: 1 }, ada.user, entry), HOUR, userCtx(entry))
    await store.set(short, boundRecord({}, ada.user, lapsing), 30, userCtx(lapsing))
    await new Promise((resolve) => setTimeout(resolve, 60))
    await local.direct('CONFIG', 'SET', 'min-replicas-to-write', '1')
    try {
      await expect(store.patch(key, patch({ b: 2 }), HOUR, userCtx(entry))).rejects.toThrow(/NOREPLICAS/)
      expect(await store.userEntries?.(ada.user.key, ctx())).toEqual([{ key, handle: entry.handle }])
      expect(await store.getMany?.([key, short], ctx())).toEqual([
        boundRecord({ a: 1 }, ada.user, entry),
        null,
      ])
      expect(await store.count?.(ctx())).toBe(1)
      expect(await store.countUsers?.(ctx())).toBe(1)
    } finally {
      await local.direct('CONFIG', 'SET', 'min-replicas-to-write', '0')
    }
    // Writable again: the next listing prunes the lapsed entry.
    expect(await store.userEntries?.(ada.user.key, ctx())).toHaveLength(1)
    expect(await local.direct('ZCARD', `sess:u:${ada.user.key}`)).toBe(1)
  })

  it('writes nothing when a user index or the users set holds something else (no half-applied script)', async () => {
    const store = upstashStore({ redis: local.client() })
    const ada = bound()
    const [first, moved] = [ada.entry(), ada.entry()]
    const [oldKey, key] = [newKey(), newKey()]
    await store.set(oldKey, boundRecord({ a: 1 }, ada.user, first), HOUR, userCtx(first))
    for (const [role, name] of [
      ['user index', `sess:u:${ada.user.key}`],
      ['users set', 'sess:users'],
    ]) {
      await local.direct('DEL', name as string)
      await local.direct('SET', name as string, 'not a sorted set')
      const wrong = new RegExp(`WRONGTYPE the ${role} holds a string, not a zset`)
      const moving = boundRecord({ b: 2 }, ada.user, moved)
      await expect(store.set(key, moving, HOUR, userCtx(moved, first), oldKey)).rejects.toThrow(wrong)
      await expect(store.patch(oldKey, patch({ b: 2 }), HOUR, userCtx(first))).rejects.toThrow(wrong)
      await expect(store.delete(oldKey, userCtx(first))).rejects.toThrow(wrong)
      await expect(store.revokeUser?.(ada.user.key, [oldKey], ctx())).rejects.toThrow(/WRONGTYPE/)
      expect(await store.get(oldKey, ctx())).toEqual(boundRecord({ a: 1 }, ada.user, first))
      expect(await local.direct('EXISTS', `sess:${key}`)).toBe(0)
      expect(await local.direct('ZRANGE', 'sess:#live', '0', '-1')).toEqual([Buffer.from(oldKey)])
      await local.direct('DEL', name as string)
    }
  })
})

describe('upstashStore: errors carry no session data', () => {
  const SECRET = 'errors-secret-0123456789abcdefghijklmnopqrs'
  const VALUE = 'value-only-the-session-holds-7f3a'

  /** A session holding VALUE under `card`, its cookie in the jar, and what a leak would show. */
  async function sessionWithSecret(clientOptions = {}) {
    const sessions = createSessions<Record<string, unknown>>({
      store: upstashStore({ redis: local.client({ retry: false, ...clientOptions }) }),
      secrets: [SECRET],
    })
    const jar = new CookieJar()
    const first = await sessions.load(jar.request())
    first.set('card', VALUE)
    jar.update(await sessions.commit(first, new Response()))
    const key = await storageKey(first.id)
    return { sessions, jar, key, secrets: [VALUE, key, `sess:${key}`, first.id, SCRIPT_TEXT] }
  }

  it.each([
    ['default options', {}],
    ['auto-pipelining off', { enableAutoPipelining: false }],
  ])('when the endpoint refuses every request (client with %s)', async (_, clientOptions) => {
    const { sessions, jar, secrets } = await sessionWithSecret(clientOptions)
    const loaded = await sessions.load(jar.request())
    loaded.set('card', `${VALUE}-changed`)
    const regenerating = await sessions.load(jar.request())
    regenerating.regenerate()
    local.endpoint.refuse({ status: 500, error: 'ERR internal error' })
    try {
      const failures = [
        await rejection(sessions.load(jar.request())),
        await rejection(sessions.commit(loaded, new Response())),
        await rejection(sessions.commit(regenerating, new Response())),
        await rejection(sessions.count()),
      ]
      for (const failure of failures) {
        expect(failure).toMatchObject({ name: 'SessionError', code: 'ERR_STORE' })
        expect(String((failure as Error).message)).toMatch(/ERR internal error/)
        expectNoneOf(failure, [...secrets, `${VALUE}-changed`])
      }
    } finally {
      local.endpoint.refuse(null)
    }
    // Sent: the requests did carry the session, so the check above had something to find.
    expect(JSON.stringify(local.endpoint.requests)).toContain(`${VALUE}-changed`)
  })

  it('when the endpoint refuses the per-user calls and logins', async () => {
    const { sessions, jar, secrets } = await sessionWithSecret()
    const USER = 'user-id-only-the-record-holds-9b2c'
    const login = await sessions.load(jar.request())
    login.setUser(USER, { label: `${VALUE}-label` })
    jar.update(await sessions.commit(login, new Response()))
    const userKey = String(((await local.direct('KEYS', 'sess:u:*')) as Buffer[])[0]).slice('sess:u:'.length)
    const regenerating = await sessions.load(jar.request())
    regenerating.regenerate()
    const switching = await sessions.load(jar.request())
    switching.setUser(`${USER}-next`, { label: `${VALUE}-next` })
    const sensitive = [
      ...secrets,
      USER,
      userKey,
      login.handle,
      await storageKey(login.id),
      `${VALUE}-label`,
      `${VALUE}-next`,
    ]
    local.endpoint.refuse({ status: 500, error: 'ERR internal error' })
    try {
      const failures = [
        await rejection(sessions.listUserSessions(USER)),
        await rejection(sessions.revokeUserSession(USER, login.handle)),
        await rejection(sessions.revokeUserSessions(USER)),
        await rejection(sessions.countUsers()),
        await rejection(sessions.commit(regenerating, new Response())),
        await rejection(sessions.commit(switching, new Response())),
      ]
      for (const failure of failures) {
        expect(failure).toMatchObject({ name: 'SessionError', code: 'ERR_STORE' })
        expect(String((failure as Error).message)).toMatch(/ERR internal error/)
        expectNoneOf(failure, sensitive)
      }
    } finally {
      local.endpoint.refuse(null)
    }
    // Sent: the requests did carry the user and the index, so the check above had something to find.
    const sent = JSON.stringify(local.endpoint.requests)
    for (const text of [`${VALUE}-next`, userKey, login.handle]) expect(sent).toContain(text)
  })

  it('when Redis refuses a write or a read (NOREPLICAS, WRONGTYPE)', async () => {
    for (const clientOptions of [{}, { enableAutoPipelining: false }]) {
      const { sessions, jar, key, secrets } = await sessionWithSecret(clientOptions)
      const loaded = await sessions.load(jar.request())
      loaded.set('card', `${VALUE}-changed`)
      await local.direct('CONFIG', 'SET', 'min-replicas-to-write', '1')
      try {
        const failure = await rejection(sessions.commit(loaded, new Response()))
        expect(failure).toMatchObject({ code: 'ERR_STORE', message: expect.stringMatching(/NOREPLICAS/) })
        expectNoneOf(failure, [...secrets, `${VALUE}-changed`])
      } finally {
        await local.direct('CONFIG', 'SET', 'min-replicas-to-write', '0')
      }
      await local.direct('SET', `sess:${key}`, `not a hash: ${VALUE}`)
      const failure = await rejection(sessions.load(jar.request()))
      expect(failure).toMatchObject({ code: 'ERR_STORE', message: expect.stringMatching(/WRONGTYPE/) })
      expectNoneOf(failure, secrets)
    }
  })

  it("when the live set is not a sorted set (the store's own check)", async () => {
    const { sessions, jar, secrets } = await sessionWithSecret()
    const loaded = await sessions.load(jar.request())
    loaded.set('card', `${VALUE}-changed`)
    await local.direct('DEL', 'sess:#live')
    await local.direct('SET', 'sess:#live', 'not a sorted set')
    const failure = await rejection(sessions.commit(loaded, new Response()))
    expect(failure).toMatchObject({
      code: 'ERR_STORE',
      message: expect.stringMatching(/WRONGTYPE the live-session set holds a string, not a zset/),
    })
    expectNoneOf(failure, [...secrets, `${VALUE}-changed`, 'sess:#live'])
  })
})
