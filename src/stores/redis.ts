/** @module redisStore(): sessions in a self-hosted Redis over TCP through ioredis (standalone, Sentinel or Cluster). */

import { SessionError } from '../errors.ts'
import type { ServerStore } from '../store.ts'
import { createRedisStore, type RedisCommands } from './redis-core.ts'

/*
 * The client is described by the few methods used here rather than imported from ioredis: ioredis's declarations
 * pull in Node's types, and src/ compiles against web types alone. A `Redis` or `Cluster` from ioredis 5 or 6
 * fits (test/stores/redis.test.ts checks both).
 */

/** The part of an ioredis `Redis` (standalone or Sentinel) or `Cluster` client this store uses. */
export interface IoRedisClient {
  /** True on an ioredis `Cluster`. */
  readonly isCluster: boolean
  hgetall(key: string): Promise<Record<string, string>>
  eval(script: string, numkeys: number, ...keysAndArgs: string[]): Promise<unknown>
  evalsha(sha1: string, numkeys: number, ...keysAndArgs: string[]): Promise<unknown>
  pipeline(): IoRedisPipeline
}

/** The part of an ioredis pipeline this store uses: commands queued, then sent together in one write. */
export interface IoRedisPipeline {
  eval(script: string, numkeys: number, ...keysAndArgs: string[]): IoRedisPipeline
  evalsha(sha1: string, numkeys: number, ...keysAndArgs: string[]): IoRedisPipeline
  wait(numreplicas: number, timeout: number): IoRedisPipeline
  exec(): Promise<[error: Error | null, result: unknown][] | null>
}

export interface WaitForReplicas {
  /** How many replicas must have each write before it counts as done (at least 1). */
  replicas: number
  /** How long to wait for them, in ms (at least 1: Redis's `WAIT ... 0` would wait forever). */
  timeout: number
}

export interface RedisStoreOptions {
  /** An ioredis client: `new Redis(url)`, `new Redis({ sentinels, name })` or `new Cluster(nodes)`. */
  client: IoRedisClient
  /** Put before every key this store writes. Default `'sess:'`. */
  prefix?: string
  /**
   * After each write, `WAIT replicas timeout`: the write fails (`ERR_STORE`) unless that many replicas
   * acknowledged it in time, so a session write the app was told succeeded survives the master's loss.
   */
  waitForReplicas?: WaitForReplicas
}

/**
 * Keeps each session as a Redis hash (one field per data key, plus its deadlines) in a Redis you run, reached over
 * TCP with ioredis. The record layout, the Lua scripts and so the behaviour are those of `upstashStore`: a read is
 * one `HGETALL`, every write one script (`EVALSHA`), atomic; a patch never recreates a destroyed or expired session; a
 * regenerate deletes the old record in the same script; concurrent changes to different keys all persist; live
 * sessions are counted in a sorted set kept by those scripts. Every call is one round trip.
 *
 * Node and Bun only: ioredis speaks raw TCP (`node:net`), which Cloudflare Workers and Deno Deploy do not give it.
 * There, use `upstashStore` (Redis over HTTP).
 *
 * **Sentinel.** Give ioredis the sentinels and the master's name; after a failover it asks them for the new master
 * and reconnects, without a restart. While no master is reachable every store call fails, so `load` and `commit`
 * reject with `ERR_STORE`: nothing is lost silently. Writes are replicated asynchronously, so the last writes
 * before a master dies can be missing on the promoted replica; `waitForReplicas` closes that gap.
 *
 * **waitForReplicas.** Each write is sent with a `WAIT` pipelined behind it (same round trip, one more command),
 * and resolves only when the replicas have it: every write costs the replication delay on top, and fails with
 * `ERR_STORE` when fewer replicas than asked answer within `timeout` (no replica left after a failover, a lagging
 * one). Such a failed write may still have reached the master: like any write whose answer is lost, it is
 * reported as failed, never as done. Reads and `count()` do not wait.
 *
 * **Cluster.** Each session is one key, so each write script stays in one slot. The live-session index and a
 * regenerate's old record usually live in other slots, so on a `Cluster` this store keeps no index (`count()`
 * rejects with `ERR_UNSUPPORTED`) and regenerates in two steps, one after the other: the new record first, then
 * the old one deleted; no longer one atomic step. A prefix with a hash tag, such as `'{sess}:'`, puts every key in
 * one slot instead: counting and the one-script regenerate come back, and all sessions live on one shard.
 *
 * **Recommended client options**, so that a lost master fails fast and never replays a write later:
 * `enableOfflineQueue: false` (no queueing while disconnected: calls fail at once; connect before serving),
 * `maxRetriesPerRequest: 0` (a call in flight when the connection drops fails rather than being resent),
 * `commandTimeout` above `waitForReplicas.timeout` and below the sessions' `storeTimeout` (default 5000 ms),
 * a short `retryStrategy` (reconnect every 100-500 ms) and, with Sentinel, a short `sentinelRetryStrategy`. Leave
 * ioredis's `failoverDetector` off: Redis drops its clients when Sentinel changes its role anyway, and in ioredis
 * 6.0.0 a `+switch-master` that arrives while the client is reconnecting ends the client for good (every call
 * then fails with "Connection is closed.").
 *
 * @param options `client`, an ioredis client; `prefix` for the keys, default `'sess:'`; `waitForReplicas`, to
 * wait for replication after each write.
 * @example
 * ```ts
 * import Redis from 'ioredis'
 * import { createSessions } from 'edge-session'
 * import { redisStore } from 'edge-session/stores/redis'
 *
 * const client = new Redis({
 *   sentinels: [{ host: '10.0.0.1', port: 26379 }, { host: '10.0.0.2', port: 26379 }],
 *   name: 'mymaster',
 *   lazyConnect: true,
 *   enableOfflineQueue: false,
 *   maxRetriesPerRequest: 0,
 *   commandTimeout: 2000,
 *   retryStrategy: () => 200,
 *   sentinelRetryStrategy: () => 200,
 * })
 * await client.connect()
 * const sessions = createSessions({
 *   store: redisStore({ client, prefix: 'myapp:sess:', waitForReplicas: { replicas: 1, timeout: 500 } }),
 *   secrets: [secret],
 * })
 * ```
 * @see {@link https://redis.io/docs/latest/commands/wait/} for what `WAIT` does and does not promise.
 * @see {@link https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#hash-tags} for hash tags.
 * @see {@link ServerStore} for the contract it implements.
 */
export function redisStore(options: RedisStoreOptions): ServerStore {
  const { client, prefix = 'sess:', waitForReplicas } = options ?? {}
  if (
    typeof client?.hgetall !== 'function' ||
    typeof client.eval !== 'function' ||
    typeof client.evalsha !== 'function' ||
    typeof client.pipeline !== 'function'
  ) {
    throw new SessionError(
      'ERR_CONFIG',
      'redisStore() needs an ioredis client (Redis or Cluster) as `client`',
    )
  }
  if (waitForReplicas !== undefined) checkWaitForReplicas(waitForReplicas)

  /** EVAL or EVALSHA (`first` is the script or its SHA-1), with WAIT behind it for a write when asked. */
  async function script(
    command: 'eval' | 'evalsha',
    first: string,
    keys: readonly string[],
    args: readonly string[],
    write: boolean | undefined,
  ): Promise<unknown> {
    if (waitForReplicas === undefined || write === false) {
      return integerReply(await client[command](first, keys.length, ...keys, ...args))
    }
    const { replicas, timeout } = waitForReplicas
    // WAIT covers every earlier write of this connection, so behind the script on the same connection it covers it.
    const replies = await client
      .pipeline()
      [command](first, keys.length, ...keys, ...args)
      .wait(replicas, timeout)
      .exec()
    const [written, waited] = replies ?? []
    if (written === undefined || waited === undefined) throw new Error('the Redis pipeline was discarded')
    if (written[0]) throw written[0]
    if (waited[0]) throw waited[0]
    const acknowledged = integerReply(waited[1])
    if (typeof acknowledged !== 'number' || acknowledged < replicas) {
      throw new Error(
        `the write reached ${String(acknowledged)} of ${replicas} replicas within ${timeout} ms (WAIT)`,
      )
    }
    return integerReply(written[1])
  }

  const commands: RedisCommands = {
    hgetall: (key) => client.hgetall(key),
    eval: (text, keys, args, _signal, write) => script('eval', text, keys, args, write),
    evalsha: (sha1, keys, args, _signal, write) => script('evalsha', sha1, keys, args, write),
  }
  return createRedisStore({ name: 'redis', prefix, commands, cluster: client.isCluster === true })
}

function checkWaitForReplicas({ replicas, timeout }: WaitForReplicas): void {
  if (!Number.isSafeInteger(replicas) || replicas < 1) {
    throw new SessionError(
      'ERR_CONFIG',
      `waitForReplicas.replicas must be a whole number of at least 1, got ${String(replicas)}`,
    )
  }
  if (!Number.isSafeInteger(timeout) || timeout < 1) {
    throw new SessionError(
      'ERR_CONFIG',
      `waitForReplicas.timeout must be a whole number of ms of at least 1, got ${String(timeout)}`,
    )
  }
}

/** ioredis with `stringNumbers: true` answers integers as strings; the shared Redis code expects numbers. */
function integerReply(reply: unknown): unknown {
  return typeof reply === 'string' && /^-?\d{1,15}$/.test(reply) ? Number(reply) : reply
}
