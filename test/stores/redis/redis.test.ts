/** @module redisStore() through ioredis against real redis-servers: standalone, with a replica, and a Cluster. */
import { createSessions, type Sessions, type SessionsOptions } from 'edge-session'
import { type IoRedisClient, type IoRedisPipeline, redisStore } from 'edge-session/stores/redis'
import { pinsSlot } from 'edge-session/stores/redis-core'
import { cleanError, isNoScript } from 'edge-session/stores/redis-errors'
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest'
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
  oneCallOfEach,
  oneRequestOfEach,
  patch,
  perUserSteps,
  ROUND_TRIP_BUDGET,
  record,
  redisNow,
  rejection,
  SCRIPT_TEXT,
  USER_ROUND_TRIP_BUDGET,
  userCtx,
} from '../../shared/redis-checks.ts'
import { CookieJar } from '../../support/jar.ts'
import {
  infoField,
  type RedisNode,
  RedisNodes,
  replicaSynced,
  startCluster,
} from '../../support/redis-nodes.ts'

/** The client options the store's documentation recommends: fail fast, never replay a write later. */
const RECOMMENDED: RedisOptions = {
  host: '127.0.0.1',
  lazyConnect: true,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  commandTimeout: 3_000,
  retryStrategy: () => 100,
}

let nodes: RedisNodes
/** A server without replicas. */
let standalone: RedisNode
/** A master with one replica, for waitForReplicas. */
let master: RedisNode
const clients: (Redis | Cluster)[] = []

async function connect(node: RedisNode, options: RedisOptions = {}): Promise<Redis> {
  const client = new Redis({ ...RECOMMENDED, port: node.port, ...options })
  // Connection errors reach the calls that fail; without a listener ioredis would also log each reconnect.
  client.on('error', () => {})
  clients.push(client)
  await client.connect()
  return client
}

beforeAll(async () => {
  nodes = await RedisNodes.create()
  ;[standalone, master] = await Promise.all([nodes.start('standalone'), nodes.start('master')])
  const replica = await nodes.start('replica', [`replicaof 127.0.0.1 ${master.port}`])
  await replicaSynced(replica, 'the replica to sync')
})

afterAll(async () => {
  for (const client of clients) client.disconnect()
  await nodes?.stop()
})

let prefixes = 0
const nextPrefix = () => `conformance-${++prefixes}:`

// Not `await`ed at registration: vitest collects the suites first, the clients connect in each createStore.
let plain: Promise<Redis> | undefined
describeStoreConformance({
  name: 'redis (ioredis, standalone)',
  kind: 'server',
  createStore: async () => {
    plain ??= connect(standalone)
    return redisStore({ client: await plain, prefix: nextPrefix() })
  },
  realTimeExpiry: true,
})

let replicated: Promise<Redis> | undefined
describeStoreConformance({
  name: 'redis (ioredis, master and replica, waitForReplicas 1)',
  kind: 'server',
  createStore: async () => {
    replicated ??= connect(master)
    return redisStore({
      client: await replicated,
      prefix: nextPrefix(),
      waitForReplicas: { replicas: 1, timeout: 1_000 },
    })
  },
  realTimeExpiry: true,
})

/** Calls of the commands this store sends, from the server's own `INFO commandstats`. */
async function commandCalls(node: RedisNode): Promise<Record<string, number>> {
  const info = await node.text('INFO', 'commandstats')
  const calls: Record<string, number> = {}
  for (const name of ['hgetall', 'eval', 'evalsha', 'wait']) {
    calls[name] = Number(/calls=(\d+)/.exec(infoField(info, `cmdstat_${name}`) ?? '')?.[1] ?? 0)
  }
  return calls
}

const sum = (calls: Record<string, number>) => Object.values(calls).reduce((a, b) => a + b, 0)

/** For `measureEach`: [round trips the client made, commands `node` ran] during each step. */
function tripsAndCommands(node: RedisNode, client: { trips: number }) {
  return async () => {
    client.trips = 0
    const before = sum(await commandCalls(node))
    return async (): Promise<[number, number]> => [client.trips, sum(await commandCalls(node)) - before]
  }
}

/**
 * The client, counting its round trips: each HGETALL, EVAL, EVALSHA and pipeline `exec` is one request written and
 * one reply awaited (a pipeline's commands go out in one write).
 */
function countingClient(inner: Redis): IoRedisClient & { trips: number } {
  const counted = {
    trips: 0,
    isCluster: inner.isCluster,
    hgetall(key: string) {
      counted.trips++
      return inner.hgetall(key)
    },
    eval(script: string, numkeys: number, ...rest: string[]) {
      counted.trips++
      return inner.eval(script, numkeys, ...rest)
    },
    evalsha(sha1: string, numkeys: number, ...rest: string[]) {
      counted.trips++
      return inner.evalsha(sha1, numkeys, ...rest)
    },
    pipeline() {
      const pipeline = inner.pipeline()
      const wrapped: IoRedisPipeline = {
        eval(script, numkeys, ...rest) {
          pipeline.eval(script, numkeys, ...rest)
          return wrapped
        },
        evalsha(sha1, numkeys, ...rest) {
          pipeline.evalsha(sha1, numkeys, ...rest)
          return wrapped
        },
        wait(replicas, timeout) {
          pipeline.wait(replicas, timeout)
          return wrapped
        },
        exec() {
          counted.trips++
          return pipeline.exec()
        },
      }
      return wrapped
    },
  }
  return counted
}

/** Sessions over `store` on a clock of their own, touching at most once a minute. */
function sessionsOver(
  store: ReturnType<typeof redisStore>,
  now: () => number = Date.now,
): Sessions<Record<string, unknown>> {
  return createSessions<Record<string, unknown>>({
    store,
    secrets: ['redis-sessions-secret-0123456789abcdefghijk'],
    touchInterval: 60,
    now,
  })
}

/** A redis view (past the store) through an ioredis client. */
const viewOf = (client: Redis | Cluster) => ({
  type: (name: string) => client.type(name),
  hash: (name: string) => client.hgetall(name),
  pttl: (name: string) => client.pttl(name),
  run: (command: string, ...args: string[]) => client.call(command, ...args),
})

describe('redisStore', () => {
  it('takes an ioredis Redis or Cluster client as it is typed', () => {
    expectTypeOf<Redis>().toExtend<IoRedisClient>()
    expectTypeOf<Cluster>().toExtend<IoRedisClient>()
    expectTypeOf<{ hgetall: () => void }>().not.toExtend<IoRedisClient>()
  })

  it('is a server store named redis that can touch, count, and keep sessions per user', async () => {
    const store = redisStore({ client: await connect(standalone) })
    expect(store.kind).toBe('server')
    expect(store.name).toBe('redis')
    for (const method of ['touch', 'count', 'userEntries', 'getMany', 'revokeUser', 'countUsers'] as const)
      expect(typeof store[method], method).toBe('function')
  })

  it('rejects a missing client and bad waitForReplicas at creation with ERR_CONFIG', async () => {
    const client = await connect(standalone)
    // Every store's configuration errors start with its factory's name.
    const config = expect.objectContaining({
      name: 'SessionError',
      code: 'ERR_CONFIG',
      message: expect.stringMatching(/^redisStore\(\): /),
    })
    expect(() => redisStore({ client: undefined as unknown as IoRedisClient })).toThrow(config)
    expect(() => redisStore({ client: {} as IoRedisClient })).toThrow(config)
    expect(() => redisStore({ client, prefix: 7 as unknown as string })).toThrow(config)
    for (const waitForReplicas of [
      { replicas: 0, timeout: 100 },
      { replicas: 1.5, timeout: 100 },
      { replicas: 1, timeout: 0 },
      { replicas: 1, timeout: Number.POSITIVE_INFINITY },
      { replicas: '1' as unknown as number, timeout: 100 },
    ]) {
      expect(() => redisStore({ client, waitForReplicas })).toThrow(config)
    }
  })

  it('keeps the Upstash store layout: a hash under prefix + key, j-encoded fields, a live set', async () => {
    const client = await connect(standalone)
    const store = redisStore({ client, prefix: 'layout:' })
    const key = await expectSessionHash(store, 'layout:', {
      type: (name) => client.type(name),
      hash: (name) => client.hgetall(name),
      pttl: (name) => client.pttl(name),
      run: (command, ...args) => client.call(command, ...args),
    })
    expect(await client.zrange('layout:#live', '0', '-1')).toEqual([key])
    expect(await store.get(key, ctx())).toEqual(record({ user: 'ada', n: 3 }, { flash: ['n'] }))
  })

  it('uses the prefix sess: by default', async () => {
    const client = await connect(standalone)
    const key = newKey()
    await redisStore({ client }).set(key, record({}), HOUR, ctx())
    expect(await client.exists(`sess:${key}`)).toBe(1)
    await client.del(`sess:${key}`, 'sess:#live')
  })

  it.each([
    ['stringNumbers: true', { stringNumbers: true }],
    ['keyPrefix: "app:"', { keyPrefix: 'app:' }],
    ['protocol: 2 (RESP2)', { protocol: 2 as const }],
    ['enableAutoPipelining: true', { enableAutoPipelining: true }],
  ])('works with a client with %s', async (_, options) => {
    const store = redisStore({ client: await connect(standalone, options), prefix: nextPrefix() })
    const [oldKey, key] = [newKey(), newKey()]
    const data = { n: '1.5', big: 2 ** 53 - 1, nested: { a: [1, null] } }
    expect(await store.set(oldKey, record(data), HOUR, ctx())).toBe(true)
    expect(await store.patch(oldKey, patch({ m: 'x' }, ['n']), HOUR, ctx())).toBe(true)
    expect(await store.set(key, record({ moved: true }), HOUR, ctx(), oldKey)).toBe(true)
    expect(await store.get(oldKey, ctx())).toBeNull()
    expect(await store.get(key, ctx())).toEqual(record({ moved: true }))
    expect(await store.count?.(ctx())).toBe(1)
    expect(await store.patch(oldKey, patch({ late: 1 }), HOUR, ctx())).toBe(false)
  })

  it('costs one round trip and one command per call', async () => {
    const client = countingClient(await connect(standalone))
    const store = redisStore({ client, prefix: nextPrefix() })
    await expectOneRoundTripAndCommandEach(store, tripsAndCommands(standalone, client), 1)
  })

  it('sends nothing when the signal is already aborted', async () => {
    const client = countingClient(await connect(standalone))
    const store = redisStore({ client })
    const before = sum(await commandCalls(standalone))
    await expectAbortedCallsRefused(store)
    expect(client.trips).toBe(0)
    expect(sum(await commandCalls(standalone))).toBe(before)
  })

  it('rejects every call at once while the server is unreachable (recommended options)', async () => {
    const own = await nodes.start('short-lived')
    const store = redisStore({ client: await connect(own), prefix: nextPrefix() })
    const key = newKey()
    await store.set(key, record({ a: 1 }), HOUR, ctx())
    await own.kill()
    const started = Date.now()
    await expect(store.get(key, ctx())).rejects.toThrow()
    await expect(store.set(key, record({ lost: true }), HOUR, ctx())).rejects.toThrow()
    await expect(store.patch(key, patch({ a: 9 }), HOUR, ctx())).rejects.toThrow()
    await expect(store.delete(key, ctx())).rejects.toThrow()
    await expect(store.count?.(ctx())).rejects.toThrow()
    expect(Date.now() - started).toBeLessThan(1_000)
  })
})

describe('redisStore: every key, flash markers', () => {
  it('keeps every string key, __proto__ included, on a whole write and on a patch', async () => {
    await expectEveryKeyKept(redisStore({ client: await connect(standalone), prefix: nextPrefix() }))
  })

  it('reads a record written with the former flash list, and moves it to a field per marker', async () => {
    const client = await connect(standalone)
    const prefix = nextPrefix()
    await expectLegacyFlashList(redisStore({ client, prefix }), prefix, viewOf(client))
  })

  it.each([
    ['standalone', false],
    ['with waitForReplicas', true],
  ])('keeps a flash from requests that loaded before it and commit after it (%s)', async (_, wait) => {
    const client = await connect(wait ? master : standalone)
    const store = redisStore({
      client,
      prefix: nextPrefix(),
      ...(wait ? { waitForReplicas: { replicas: 1, timeout: 1_000 } } : {}),
    })
    await expectFlashKeptFromRacingRequests((now) => sessionsOver(store, now))
  })
})

describe('redisStore: scripts by SHA-1', () => {
  it('sends a script whole once, then by its SHA-1 alone', async () => {
    const client = countingClient(await connect(standalone))
    const store = redisStore({ client, prefix: nextPrefix() })
    const key = newKey()
    await store.set(key, record({ a: 1 }), HOUR, ctx())
    await store.patch(key, patch({ b: 2 }), HOUR, ctx())
    const before = await commandCalls(standalone)
    await store.patch(key, patch({ c: 3 }), HOUR, ctx())
    await store.touch?.(key, meta(), HOUR, ctx())
    await store.set(newKey(), record({}), HOUR, ctx())
    const after = await commandCalls(standalone)
    const delta = (name: string) => (after[name] ?? 0) - (before[name] ?? 0)
    expect([delta('eval'), delta('evalsha')]).toEqual([0, 3])
    expect(await store.get(key, ctx())).toEqual(record({ a: 1, b: 2, c: 3 }))
  })

  it.each([
    ['standalone', false],
    ['with waitForReplicas', true],
  ])('after SCRIPT FLUSH, a write still lands, at one extra round trip once (%s)', async (_, wait) => {
    const node = wait ? master : standalone
    const client = countingClient(await connect(node))
    const store = redisStore({
      client,
      prefix: nextPrefix(),
      ...(wait ? { waitForReplicas: { replicas: 1, timeout: 1_000 } } : {}),
    })
    const key = newKey()
    await store.set(key, record({ a: 1 }), HOUR, ctx())
    await store.patch(key, patch({ b: 2 }), HOUR, ctx())
    await node.text('SCRIPT', 'FLUSH')
    const measured = await measureEach(
      {
        flushed: () => store.patch(key, patch({ c: 3 }), HOUR, ctx()),
        again: () => store.patch(key, patch({ d: 4 }), HOUR, ctx()),
      },
      tripsAndCommands(node, client),
    )
    // [round trips, commands]: EVALSHA answered NOSCRIPT, then EVAL (each with its WAIT when waiting).
    const w = wait ? 2 : 1
    expect(measured).toEqual({ flushed: [2, 2 * w], again: [1, w] })
    expect(await store.get(key, ctx())).toEqual(record({ a: 1, b: 2, c: 3, d: 4 }))
  })
})

describe('redisStore: errors carry no session data', () => {
  const VALUE = 'value-only-the-session-holds-5c1e'

  it.each([
    ['without waitForReplicas', false],
    ['with waitForReplicas (pipelined WAIT)', true],
  ])('when Redis refuses a write or a read (%s)', async (_, wait) => {
    const own = await nodes.start('refusing')
    const client = await connect(own)
    const prefix = nextPrefix()
    const sessions = sessionsOver(
      redisStore({
        client,
        prefix,
        ...(wait ? { waitForReplicas: { replicas: 1, timeout: 50 } } : {}),
      }),
    )
    // Without a replica, WAIT would fail every write: the first one is written as the wait-free store does.
    const writer = wait ? sessionsOver(redisStore({ client, prefix })) : sessions
    const jar = new CookieJar()
    const first = await writer.load(jar.request())
    first.set('card', VALUE)
    jar.update(await writer.commit(first, new Response()))
    const key = await storageKey(first.id)
    const secrets = [VALUE, `${VALUE}-changed`, key, prefix + key, first.id, SCRIPT_TEXT]

    const loaded = await sessions.load(jar.request())
    loaded.set('card', `${VALUE}-changed`)
    await own.text('CONFIG', 'SET', 'min-replicas-to-write', '1')
    const refused = await rejection(sessions.commit(loaded, new Response()))
    expect(refused).toMatchObject({ code: 'ERR_STORE', message: expect.stringMatching(/NOREPLICAS/) })
    expectNoneOf(refused, secrets)
    await own.text('CONFIG', 'SET', 'min-replicas-to-write', '0')

    await client.set(prefix + key, `not a hash: ${VALUE}`)
    const unreadable = await rejection(sessions.load(jar.request()))
    expect(unreadable).toMatchObject({ code: 'ERR_STORE', message: expect.stringMatching(/WRONGTYPE/) })
    expectNoneOf(unreadable, secrets)
    await own.kill()
  })
})

describe('redisStore: errors of the per-user calls carry no session data', () => {
  it('when Redis refuses a login or a revocation (NOREPLICAS), or the index is not a sorted set', async () => {
    const VALUE = 'value-only-the-session-holds-2d7e'
    const USER = 'user-id-only-the-record-holds-61f0'
    const own = await nodes.start('refusing-users')
    const client = await connect(own)
    const prefix = nextPrefix()
    const sessions = sessionsOver(redisStore({ client, prefix }))
    const jar = new CookieJar()
    const first = await sessions.load(jar.request())
    first.set('card', VALUE).setUser(USER, { label: `${VALUE}-label` })
    jar.update(await sessions.commit(first, new Response()))
    const key = await storageKey(first.id)
    const userKey = await indexKeyOf(client, prefix)
    expect(userKey).toMatch(/^[\w-]{43}$/)
    const secrets = [VALUE, `${VALUE}-label`, USER, userKey, key, first.id, first.handle, SCRIPT_TEXT]

    const switching = await sessions.load(jar.request())
    switching.setUser(`${USER}-next`)
    await own.text('CONFIG', 'SET', 'min-replicas-to-write', '1')
    const refused = [
      await rejection(sessions.commit(switching, new Response())),
      await rejection(sessions.revokeUserSessions(USER)),
    ]
    await own.text('CONFIG', 'SET', 'min-replicas-to-write', '0')
    for (const failure of refused) {
      expect(failure).toMatchObject({ code: 'ERR_STORE', message: expect.stringMatching(/NOREPLICAS/) })
      expectNoneOf(failure, [...secrets, `${USER}-next`])
    }

    await client.del(`${prefix}u:${userKey}`)
    await client.set(`${prefix}u:${userKey}`, `not a sorted set: ${VALUE}`)
    for (const failure of [
      await rejection(sessions.listUserSessions(USER)),
      await rejection(sessions.revokeUserSession(USER, first.handle)),
    ]) {
      expect(failure).toMatchObject({ code: 'ERR_STORE', message: expect.stringMatching(/WRONGTYPE/) })
      expectNoneOf(failure, secrets)
    }
    // Nothing was written by the refused calls: the session is as it was.
    expect((await sessions.load(jar.request())).all()).toEqual({ card: VALUE })
    await own.kill()
  })
})

/** The user key of the one user index under `prefix`. */
async function indexKeyOf(client: Redis, prefix: string): Promise<string> {
  const [name] = await client.keys(`${prefix}u:*`)
  return name?.slice(`${prefix}u:`.length) ?? ''
}

describe('redisStore with waitForReplicas', () => {
  it('sends WAIT behind each write in the same round trip, and none behind reads and counts', async () => {
    const client = countingClient(await connect(master))
    const store = redisStore({
      client,
      prefix: nextPrefix(),
      waitForReplicas: { replicas: 1, timeout: 1_000 },
    })
    const measured = await measureEach(oneCallOfEach(store), tripsAndCommands(master, client))
    // [round trips, commands]: a write is EVAL + WAIT, sent together. The getMany script runs an HGETALL per
    // record, and a write with `returnRecord` one for its record, which the server's tally counts too.
    expect(measured).toEqual({
      set: [1, 2],
      get: [1, 1],
      patch: [1, 2],
      touch: [1, 2],
      'set replaces': [1, 2],
      count: [1, 1],
      delete: [1, 2],
      'set, bound': [1, 2],
      'patch, bound': [1, 2],
      'touch, bound': [1, 2],
      'patch, record': [1, 3],
      'touch, record': [1, 3],
      'set replaces, bound': [1, 2],
      userEntries: [1, 1],
      getMany: [1, 3],
      countUsers: [1, 1],
      revokeUser: [1, 2],
      'delete, bound': [1, 2],
    })
  })

  it('resolves a write only once the replica has it', async () => {
    const client = await connect(master)
    const replica = nodes.nodes.find((node) => node.name === 'replica')
    if (!replica) throw new Error('no replica')
    const store = redisStore({ client, prefix: 'acked:', waitForReplicas: { replicas: 1, timeout: 1_000 } })
    for (let i = 0; i < 20; i++) {
      const key = newKey()
      await store.set(key, record({ i }), HOUR, ctx())
      // Read straight from the replica, with no wait in between: it has the write already.
      expect(await replica.text('HGET', `acked:${key}`, 'd:i')).toBe(`j${i}`)
    }
  })

  it('fails a write that fewer replicas than asked acknowledged in time, with ERR_STORE from commit', async () => {
    const client = await connect(standalone)
    const prefix = nextPrefix()
    const store = redisStore({ client, prefix, waitForReplicas: { replicas: 1, timeout: 200 } })
    const started = Date.now()
    await expect(store.set(newKey(), record({ a: 1 }), HOUR, ctx())).rejects.toThrow(
      'the write reached 0 of 1 replicas within 200 ms (WAIT)',
    )
    expect(Date.now() - started).toBeGreaterThanOrEqual(190)
    // Reads and counts do not wait for replicas.
    expect(await store.get(newKey(), ctx())).toBeNull()
    expect(await store.count?.(ctx())).toBe(1)

    const sessions = createSessions({ store, secrets: ['wait-test-secret-0123456789abcdefghijklmn'] })
    const session = await sessions.load(new Request('https://app.example/'))
    session.set('user', 'ada')
    await expect(sessions.commit(session, new Response())).rejects.toMatchObject({
      name: 'SessionError',
      code: 'ERR_STORE',
      cause: expect.objectContaining({ message: expect.stringContaining('WAIT') }),
    })
  })
})

describe('createSessions over redisStore: round trips per request', () => {
  const SECRET = 'redis-test-secret-0123456789abcdefghijklmnop'

  it.each([
    ['without waitForReplicas', false],
    ['with waitForReplicas', true],
  ])('match the Upstash store budget %s', async (_, wait) => {
    const node = wait ? master : standalone
    const client = countingClient(await connect(node))
    let now = Date.UTC(2030, 0, 1)
    const sessions = createSessions<Record<string, unknown>>({
      store: redisStore({
        client,
        prefix: nextPrefix(),
        ...(wait ? { waitForReplicas: { replicas: 1, timeout: 1_000 } } : {}),
      }),
      secrets: [SECRET],
      idleTimeout: 1800,
      touchInterval: 60,
      now: () => now,
    } satisfies SessionsOptions)
    const jar = new CookieJar()
    const requests = oneRequestOfEach(sessions, jar, () => {
      now += 61_000
    })
    const measured = await measureEach(requests, tripsAndCommands(node, client))
    const trips = Object.fromEntries(Object.entries(measured).map(([name, [n]]) => [name, n]))
    expect(trips).toEqual(ROUND_TRIP_BUDGET)
    const commands = Object.fromEntries(Object.entries(measured).map(([name, [, n]]) => [name, n]))
    const w = wait ? 1 : 0
    expect(commands).toEqual({
      anonymous: 0,
      new: 1 + w,
      readOnly: 1,
      changing: 2 + w,
      touch: 2 + w,
      regenerate: 2 + w,
      destroy: 2 + w,
    })
    expect(jar.cookies.size).toBe(0)
  })

  it.each([
    ['without waitForReplicas', false],
    ['with waitForReplicas', true],
  ])('match the Upstash store budget for each per-user request %s', async (_, wait) => {
    const node = wait ? master : standalone
    const client = countingClient(await connect(node))
    let now = Date.UTC(2030, 0, 1)
    const sessions = createSessions<Record<string, unknown>>({
      store: redisStore({
        client,
        prefix: nextPrefix(),
        ...(wait ? { waitForReplicas: { replicas: 1, timeout: 1_000 } } : {}),
      }),
      secrets: [SECRET],
      touchInterval: 60,
      now: () => now,
    })
    const steps = await perUserSteps(sessions, new CookieJar(), () => {
      now += 61_000
    })
    const measured = await measureEach(steps, tripsAndCommands(node, client))
    const trips = Object.fromEntries(Object.entries(measured).map(([name, [n]]) => [name, n]))
    expect(trips).toEqual(USER_ROUND_TRIP_BUDGET)
    // Commands: one per round trip, and a WAIT behind each write (listing and counting users do not wait); the
    // server's tally also counts the HGETALL the listing's read script runs for each of the 3 sessions.
    const w = wait ? 1 : 0
    const commands = Object.fromEntries(Object.entries(measured).map(([name, [, n]]) => [name, n]))
    expect(commands).toEqual({
      new: 1 + w,
      login: 2 + w,
      readOnly: 1,
      changing: 2 + w,
      touch: 2 + w,
      regenerate: 2 + w,
      list: 2 + 3,
      revokeOne: 2 + w,
      revokeOthers: 2 + w,
      countUsers: 1,
      logout: 2 + w,
    })
  })
})

describe('redisStore: sessions per user', () => {
  const sessionsOn = (client: Redis, prefix: string) => sessionsOver(redisStore({ client, prefix }))

  it("keeps the handle and the user in the record, and an entry in the user's index on Redis's clock", async () => {
    const client = await connect(standalone)
    const prefix = nextPrefix()
    await expectUserLayout(redisStore({ client, prefix }), prefix, viewOf(client))
  })

  it('puts no user id in any key name (SCAN after logins)', async () => {
    const client = await connect(standalone)
    const prefix = nextPrefix()
    await expectNoUserIdInKeyNames(sessionsOn(client, prefix), prefix, viewOf(client))
  })

  it('lets the user index and the users set expire with their sessions', async () => {
    const client = await connect(standalone)
    const prefix = nextPrefix()
    await expectUserSetsExpireWithSessions(redisStore({ client, prefix }), prefix, viewOf(client))
  })

  it("revokes only that user's records among the keys it is given", async () => {
    await expectRevokeOnlyTheUsers(redisStore({ client: await connect(standalone), prefix: nextPrefix() }))
  })

  it('opens a record written before handles, and logs it in', async () => {
    const client = await connect(standalone)
    const prefix = nextPrefix()
    await expectRecordWithoutHandleWorks(sessionsOn(client, prefix), prefix, viewOf(client), storageKey)
  })

  it('revokes on the master with waitForReplicas: the replica has the revocation when it resolves', async () => {
    const client = await connect(master)
    const replica = nodes.nodes.find((node) => node.name === 'replica')
    if (!replica) throw new Error('no replica')
    const prefix = nextPrefix()
    const sessions = sessionsOver(
      redisStore({ client, prefix, waitForReplicas: { replicas: 1, timeout: 1_000 } }),
    )
    const jars = await Promise.all(
      ['A', 'B', 'C'].map(async (agent) => {
        const jar = new CookieJar()
        const s = await sessions.load(jar.request())
        s.set('device', agent).setUser('ada', { label: agent })
        jar.update(await sessions.commit(s, new Response()))
        return { jar, key: await storageKey(s.id) }
      }),
    )
    expect(await sessions.revokeUserSessions('ada')).toBe(3)
    // Read straight from the replica, with no wait in between: every record is gone there too.
    for (const { key } of jars) expect(await replica.text('EXISTS', prefix + key)).toBe('0')
    for (const { jar } of jars) expect((await sessions.load(jar.request())).isNew).toBe(true)
  })
})

describe('cleanError: a client error without what it echoed of the command', () => {
  const key = 'sess:Mx4bqG0oSmI3pYXlE1qM1lMv7QhTo7lHhN9oDq4Tb2w'
  const value = 'j"4111 1111 1111 1111"'

  it('cuts what clients and Redis append of the command, and scrubs every argument sent', () => {
    const echoes = [
      `ERR internal error, command was: [["evalsha","0123abcd","2","${key}","d:card",${JSON.stringify(value)}]]`,
      `ERR unknown command 'evalsha', with args beginning with: '0123abcd' '2' '${key}' `,
      `Unable to parse response body: {"result":["ZDpjYXJk","${value}"`,
      `WRONGTYPE ${key} holds a string`,
    ]
    for (const message of echoes) {
      const clean = cleanError(new Error(message), [key, 'd:card', value])
      expect(clean.message).not.toContain(key)
      expect(clean.message).not.toContain('4111')
      expect(clean.message.length).toBeGreaterThan(10)
    }
    expect(cleanError(new Error(echoes[0]), []).message).toBe('ERR internal error [...]')
    expect(cleanError(new Error(echoes[3]), [key]).message).toBe('WRONGTYPE [...] holds a string')
  })

  it('keeps the class name and the code, drops every other field, and cleans the causes', () => {
    const reply = Object.assign(new Error(`NOREPLICAS Not enough good replicas to write. ${key}`), {
      name: 'ReplyError',
      command: { name: 'evalsha', args: ['0123abcd', '1', key, value] },
    })
    const failure = new TypeError('fetch failed', {
      cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' }),
    })
    const cleanReply = cleanError(reply, [key, value])
    expect(cleanReply).toMatchObject({
      name: 'ReplyError',
      message: 'NOREPLICAS Not enough good replicas to write. [...]',
    })
    expect(cleanReply).not.toHaveProperty('command')
    expect(Object.keys(cleanReply)).toEqual(['name'])
    expect(JSON.stringify(cleanReply.stack)).not.toContain(key)
    const cleanFailure = cleanError(failure, [key])
    expect(cleanFailure).toMatchObject({ name: 'TypeError', message: 'fetch failed' })
    expect(cleanFailure.cause).toMatchObject({
      message: 'connect ECONNREFUSED 127.0.0.1:6379',
      code: 'ECONNREFUSED',
    })
    expect(cleanFailure.cause).not.toBe(failure.cause)
    expect(cleanError('a thrown string', []).message).toBe('a thrown string')
  })

  it('tells NOSCRIPT from a message that only echoes it', () => {
    expect(isNoScript(new Error('NOSCRIPT No matching script. Please use EVAL.'))).toBe(true)
    expect(isNoScript(new Error('Command failed: NOSCRIPT No matching script. Please use EVAL.'))).toBe(true)
    expect(isNoScript(new Error('NOSCRIPT No matching script., command was: ["evalsha"]'))).toBe(true)
    expect(isNoScript(new Error('ERR internal, command was: ["evalsha","x","0","NOSCRIPT"]'))).toBe(false)
    expect(isNoScript('NOSCRIPT')).toBe(false)
  })
})

describe('pinsSlot: whether a prefix holds the hash tag of every key', () => {
  it.each([
    ['sess:', false],
    ['{sess}:', true],
    ['app:{sess}:', true],
    ['{}sess:', false],
    ['a{b', false],
    ['a}b{c}', true],
    ['{a}{b}', true],
    ['', false],
  ])('%j → %s', (prefix, pinned) => {
    expect(pinsSlot(prefix)).toBe(pinned)
  })
})

describe('redisStore on a Redis Cluster (3 masters)', () => {
  let members: RedisNode[] = []
  let cluster: Cluster | undefined

  beforeAll(async () => {
    members = await startCluster(nodes, 3)
    const first = members[0] as RedisNode
    cluster = new Cluster([{ host: '127.0.0.1', port: first.port }], {
      lazyConnect: true,
      enableOfflineQueue: false,
      redisOptions: { maxRetriesPerRequest: 0, commandTimeout: 3_000 },
    })
    cluster.on('error', () => {})
    clients.push(cluster)
    await cluster.connect()
  })

  const client = () => {
    if (!cluster) throw new Error('no cluster')
    return cluster
  }
  const slot = async (key: string) => Number(await (members[0] as RedisNode).text('CLUSTER', 'KEYSLOT', key))

  describeStoreConformance({
    name: 'redis (ioredis Cluster, keys spread over slots: no count)',
    kind: 'server',
    createStore: () => redisStore({ client: client(), prefix: nextPrefix() }),
    realTimeExpiry: true,
  })

  describeStoreConformance({
    name: 'redis (ioredis Cluster, prefix with a hash tag: one slot)',
    kind: 'server',
    createStore: () => redisStore({ client: client(), prefix: `{${nextPrefix()}}` }),
    realTimeExpiry: true,
  })

  it('agrees with Redis on which prefixes put every key in one slot', async () => {
    for (const prefix of ['sess:', '{sess}:', 'app:{sess}:', '{}sess:', 'a{b', 'a}b{c}']) {
      const slots = new Set(
        await Promise.all(
          [...Array.from({ length: 6 }, () => prefix + newKey()), `${prefix}#live`].map(slot),
        ),
      )
      expect(slots.size === 1, prefix).toBe(pinsSlot(prefix))
    }
  })

  it('has no count nor countUsers without a hash tag in the prefix: both are ERR_UNSUPPORTED', async () => {
    const store = redisStore({ client: client(), prefix: nextPrefix() })
    expect(store.count).toBeUndefined()
    expect(store.countUsers).toBeUndefined()
    expect(typeof store.userEntries).toBe('function')
    const sessions = createSessions({ store, secrets: ['cluster-secret-0123456789abcdefghijklmnopq'] })
    await expect(sessions.count()).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' })
    await expect(sessions.countUsers()).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' })
    const tagged = redisStore({ client: client(), prefix: `{${nextPrefix()}}` })
    const ada = bound()
    const entry = ada.entry()
    await tagged.set(newKey(), boundRecord({}, ada.user, entry), HOUR, userCtx(entry))
    expect(await tagged.count?.(ctx())).toBe(1)
    expect(await tagged.countUsers?.(ctx())).toBe(1)
  })

  describe('sessions per user with a hash-tagged prefix: one slot, as on a single server', () => {
    it("keeps the handle, the user and the user's entry, and revokes only that user's records", async () => {
      const prefix = `{${nextPrefix()}}`
      await expectUserLayout(redisStore({ client: client(), prefix }), prefix, viewOf(client()))
      await expectRevokeOnlyTheUsers(redisStore({ client: client(), prefix: `{${nextPrefix()}}` }))
    })

    it('lets the user index and the users set expire with their sessions', async () => {
      const prefix = `{${nextPrefix()}}`
      await expectUserSetsExpireWithSessions(
        redisStore({ client: client(), prefix }),
        prefix,
        viewOf(client()),
      )
    })
  })

  describe('sessions per user without hash tag: each entry written beside its record', () => {
    it("revokes only that user's records (checked in each record); a revoked entry stays until its deadline", async () => {
      await expectRevokeOnlyTheUsers(redisStore({ client: client(), prefix: nextPrefix() }), true)
    })

    it("raises an entry's deadline with its record's, never lowers it", async () => {
      const prefix = nextPrefix()
      const store = redisStore({ client: client(), prefix })
      const ada = bound()
      const entry = ada.entry()
      const key = newKey()
      const score = async () =>
        Number(await client().zscore(`${prefix}u:${ada.user.key}`, `${entry.handle}.${key}`))
      const start = await redisNow(viewOf(client()))
      await store.set(key, boundRecord({}, ada.user, entry), 60_000, userCtx(entry))
      expect(await score()).toBeGreaterThanOrEqual(start + 60_000)
      expect(await store.touch?.(key, meta(), 120_000, userCtx(entry))).toBe(true)
      const raised = await score()
      expect(raised).toBeGreaterThanOrEqual(start + 120_000)
      // A request that loaded earlier commits a shorter TTL: its record's TTL drops, the entry's deadline not.
      expect(await store.patch(key, patch({ a: 1 }), 30_000, userCtx(entry))).toBe(true)
      expect(await score()).toBe(raised)
      expect(await client().pttl(`${prefix}u:${ada.user.key}`)).toBeGreaterThan(110_000)
    })

    it('lists a session for as long as it lives, and drops an entry whose record is gone', async () => {
      const prefix = nextPrefix()
      const sessions = sessionsOver(redisStore({ client: client(), prefix }))
      const jars = await Promise.all(
        ['A', 'B'].map(async (agent) => {
          const jar = new CookieJar()
          const s = await sessions.load(jar.request())
          s.set('device', agent).setUser('ada', { label: agent })
          jar.update(await sessions.commit(s, new Response()))
          return jar
        }),
      )
      const [a, b] = jars as [CookieJar, CookieJar]
      const bSession = await sessions.load(b.request())
      bSession.destroy()
      await sessions.commit(bSession, new Response())
      const regenerated = await sessions.load(a.request())
      regenerated.regenerate()
      a.update(await sessions.commit(regenerated, new Response()))
      // The index still names B's record and A's former one; the list shows the one live session.
      const store = redisStore({ client: client(), prefix })
      const user = (await store.get(await storageKey(regenerated.id), ctx()))?.meta.user?.key as string
      expect(await store.userEntries?.(user, ctx())).toHaveLength(3)
      const list = await sessions.listUserSessions('ada')
      expect(list.map((s) => [s.label, s.handle])).toEqual([['A', regenerated.handle]])
      expect(await sessions.revokeUserSessions('ada')).toBe(1)
      expect(await sessions.listUserSessions('ada')).toEqual([])
      expect((await sessions.load(a.request())).isNew).toBe(true)
    })

    it('leaves no login half made: a failed entry or record write fails the commit and keeps the old session', async () => {
      for (const failing of ['entry', 'record'] as const) {
        const prefix = nextPrefix()
        let armed = false
        const sessions = sessionsOver(
          redisStore({
            client: intercepted((keys) => {
              const [first = ''] = keys
              const isIndex = first.startsWith(`${prefix}u:`)
              if (armed && (failing === 'entry') === isIndex && (isIndex || first !== oldKey))
                throw new Error(`the node refused the ${failing} write`)
            }),
            prefix,
          }),
        )
        const jar = new CookieJar()
        const first = await sessions.load(jar.request())
        first.set('cart', ['book'])
        jar.update(await sessions.commit(first, new Response()))
        const oldKey = prefix + (await storageKey(first.id))
        const login = await sessions.load(jar.request())
        login.setUser('ada')
        armed = true
        await expect(sessions.commit(login, new Response()), failing).rejects.toMatchObject({
          code: 'ERR_STORE',
        })
        armed = false
        const after = await sessions.load(jar.request())
        expect([after.id, after.userId, after.get('cart')], failing).toEqual([first.id, null, ['book']])
        // The new id reached no browser: listed or not, it is no session anyone holds.
        expect(await sessions.listUserSessions('ada'), failing).toEqual([])
      }
    })
  })

  /**
   * The Cluster client, with `ahead(keys)` awaited before each script it sends: it may throw (that call
   * fails, as a refusing or unreachable node would make it) or act on Redis first.
   */
  function intercepted(ahead: (keys: string[]) => Promise<void> | void): IoRedisClient {
    const inner = client()
    return {
      isCluster: true,
      hgetall: (key) => inner.hgetall(key),
      async eval(script, numkeys, ...rest) {
        await ahead(rest.slice(0, numkeys))
        return inner.eval(script, numkeys, ...rest)
      },
      async evalsha(sha1, numkeys, ...rest) {
        await ahead(rest.slice(0, numkeys))
        return inner.evalsha(sha1, numkeys, ...rest)
      },
      pipeline: () => inner.pipeline(),
    }
  }

  /** Two keys whose records sit on different nodes, so a regenerate must cross slots and nodes. */
  async function keysOnTwoNodes(prefix: string): Promise<[string, string]> {
    const owner = (s: number) => Math.floor(s / Math.ceil(16384 / members.length))
    const first = newKey()
    for (;;) {
      const second = newKey()
      if (owner(await slot(prefix + first)) !== owner(await slot(prefix + second))) return [first, second]
    }
  }

  it('regenerates across nodes: the new record written, the old one gone', async () => {
    const prefix = nextPrefix()
    const store = redisStore({ client: client(), prefix })
    const [oldKey, key] = await keysOnTwoNodes(prefix)
    await store.set(oldKey, record({ a: 1 }), HOUR, ctx())
    expect(await store.set(key, record({ a: 1, b: 2 }), HOUR, ctx(), oldKey)).toBe(true)
    expect(await client().exists(prefix + oldKey)).toBe(0)
    expect(await store.get(key, ctx())).toEqual(record({ a: 1, b: 2 }))
    // A retry of that write, which landed, answers true again and keeps the session.
    expect(await store.set(key, record({ a: 1, b: 2 }), HOUR, ctx(), oldKey)).toBe(true)
    expect(await store.get(key, ctx())).toEqual(record({ a: 1, b: 2 }))
  })

  it('does not bring back a session destroyed before its regenerate', async () => {
    const prefix = nextPrefix()
    const store = redisStore({ client: client(), prefix })
    const [oldKey, key] = await keysOnTwoNodes(prefix)
    await store.set(oldKey, record({ a: 1 }), HOUR, ctx())
    await store.delete(oldKey, ctx())
    expect(await store.set(key, record({ a: 1 }), HOUR, ctx(), oldKey)).toBe(false)
    expect(await client().exists(prefix + key)).toBe(0)
    expect(await client().exists(prefix + oldKey)).toBe(0)
  })

  it.each([
    ['keys spread over slots', () => nextPrefix()],
    ['prefix with a hash tag', () => `{${nextPrefix()}}`],
  ])('keeps every key and every racing flash (%s)', async (_, prefixFor) => {
    await expectEveryKeyKept(redisStore({ client: client(), prefix: prefixFor() }))
    const store = redisStore({ client: client(), prefix: prefixFor() })
    await expectFlashKeptFromRacingRequests((now) => sessionsOver(store, now))
  })

  it('after SCRIPT FLUSH on every node, sessions keep working (each node caches scripts of its own)', async () => {
    const sessions = sessionsOver(redisStore({ client: client(), prefix: nextPrefix() }))
    const jars = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const jar = new CookieJar()
        const s = await sessions.load(jar.request())
        s.set('n', i)
        jar.update(await sessions.commit(s, new Response()))
        const again = await sessions.load(jar.request())
        again.set('m', i)
        jar.update(await sessions.commit(again, new Response()))
        return jar
      }),
    )
    await Promise.all(members.map((member) => member.text('SCRIPT', 'FLUSH')))
    for (const [i, jar] of jars.entries()) {
      const s = await sessions.load(jar.request())
      s.set('after', true)
      if (i % 2 === 0) s.regenerate()
      jar.update(await sessions.commit(s, new Response()))
      expect((await sessions.load(jar.request())).all()).toEqual({ n: i, m: i, after: true })
    }
  })

  describe('a regenerate without hash tag: new record first, then the old one taken', () => {
    /** A signed-in session over `client`, and its record's full key. */
    async function signedIn(prefix: string, redis: IoRedisClient) {
      const sessions = sessionsOver(redisStore({ client: redis, prefix }))
      const jar = new CookieJar()
      const first = await sessions.load(jar.request())
      first.set('user', 'ada').set('cart', ['book'])
      jar.update(await sessions.commit(first, new Response()))
      const login = await sessions.load(jar.request())
      login.regenerate({ renew: true })
      login.set('role', 'admin')
      return { sessions, jar, first, login, oldKey: prefix + (await storageKey(first.id)) }
    }

    it('leaves the old session as it was when the new record cannot be written', async () => {
      const prefix = nextPrefix()
      let fail: string | undefined
      const { sessions, jar, first, login, oldKey } = await signedIn(
        prefix,
        intercepted((keys) => {
          if (fail !== undefined && keys[0] !== fail) throw new Error('the node refused the write')
        }),
      )
      fail = oldKey
      await expect(sessions.commit(login, new Response())).rejects.toMatchObject({ code: 'ERR_STORE' })
      fail = undefined
      expect(await client().exists(prefix + (await storageKey(login.id)))).toBe(0)
      const after = await sessions.load(jar.request())
      expect(after.isNew).toBe(false)
      expect(after.id).toBe(first.id)
      expect(after.all()).toEqual({ user: 'ada', cart: ['book'] })
    })

    it('leaves the old session as it was when taking the old record fails; the new one lapses with its TTL', async () => {
      const prefix = nextPrefix()
      let fail: string | undefined
      const { sessions, jar, first, login, oldKey } = await signedIn(
        prefix,
        intercepted((keys) => {
          if (keys[0] === fail) throw new Error('the node of the old record is unreachable')
        }),
      )
      fail = oldKey
      const response = await rejection(sessions.commit(login, new Response()))
      expect(response).toMatchObject({ code: 'ERR_STORE' })
      fail = undefined
      const after = await sessions.load(jar.request())
      expect(after.id).toBe(first.id)
      expect(after.all()).toEqual({ user: 'ada', cart: ['book'] })
      // Written, but its id never reached the browser; it goes with its TTL (the idle timeout).
      const orphan = await client().pttl(prefix + (await storageKey(login.id)))
      expect(orphan).toBeGreaterThan(0)
      expect(orphan).toBeLessThanOrEqual(30 * 60 * 1000)
    })

    it('lets a destroy that lands between the two steps stand', async () => {
      const prefix = nextPrefix()
      let destroyFirst: string | undefined
      const { sessions, jar, login, oldKey } = await signedIn(
        prefix,
        intercepted(async (keys) => {
          // The logout of another tab reaches Redis after the new record was written, before the old is taken.
          if (destroyFirst !== undefined && keys[0] === destroyFirst) await client().del(destroyFirst)
        }),
      )
      destroyFirst = oldKey
      const response = await sessions.commit(login, new Response())
      expect(response.headers.getSetCookie()).toEqual([])
      expect(login.destroyed).toBe(true)
      expect(await client().exists(prefix + (await storageKey(login.id)))).toBe(0)
      expect(await client().exists(oldKey)).toBe(0)
      expect((await sessions.load(jar.request())).isNew).toBe(true)
    })
  })

  it('waits for replicas on a Cluster too (WAIT goes to the node of the write)', async () => {
    // The masters have no replicas: a write asking for one must fail, after reaching its node.
    const prefix = nextPrefix()
    const store = redisStore({ client: client(), prefix, waitForReplicas: { replicas: 1, timeout: 100 } })
    const key = newKey()
    await expect(store.set(key, record({ a: 1 }), HOUR, ctx())).rejects.toThrow(/reached 0 of 1 replicas/)
    expect(await client().exists(prefix + key)).toBe(1)
  })
})
