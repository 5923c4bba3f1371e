/** @module redisStore(): sessions in a self-hosted Redis over TCP through ioredis (standalone, Sentinel or Cluster). */

import type { ServerStore } from '../store.ts'
import { createRedisStore, type RedisCommands } from './redis-core.ts'
import { storeConfigError } from './shared.ts'

/*
 * The client is described by the few methods used here rather than imported from ioredis: ioredis's declarations
 * pull in Node's types, and src/ compiles against web types alone. A `Redis` or `Cluster` from ioredis 5 or 6
 * fits (test/stores/redis/redis.test.ts checks both).
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
 * Keeps each session as a Redis hash in a Redis you run, over TCP with ioredis (standalone, Sentinel or Cluster):
 * the layout, Lua scripts and behaviour of `upstashStore`. A read is one `HGETALL`, every write one atomic script
 * (by `EVALSHA`). Node and Bun only (raw TCP): on Workers and Deno Deploy use `upstashStore`. Redis 5.0 or later.
 *
 * @param options `client`, an ioredis client; `prefix`, default `'sess:'`; `waitForReplicas`, WAIT after writes.
 * @example
 * ```ts
 * const client = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 })
 * await client.connect()
 * const sessions = createSessions({ store: redisStore({ client, prefix: 'myapp:sess:' }), secrets: [secret] })
 * ```
 * @see docs/redis.md for client options, Sentinel, Cluster, `waitForReplicas` and errors; {@link ServerStore}.
 */
export function redisStore(options: RedisStoreOptions): ServerStore {
  const { client, prefix = 'sess:', waitForReplicas } = options ?? {}
  if (
    typeof client?.hgetall !== 'function' ||
    typeof client.eval !== 'function' ||
    typeof client.evalsha !== 'function' ||
    typeof client.pipeline !== 'function'
  ) {
    throw storeConfigError('redisStore', 'needs an ioredis client (Redis or Cluster) as `client`')
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
    throw storeConfigError(
      'redisStore',
      `waitForReplicas.replicas must be a whole number of at least 1, got ${String(replicas)}`,
    )
  }
  if (!Number.isSafeInteger(timeout) || timeout < 1) {
    throw storeConfigError(
      'redisStore',
      `waitForReplicas.timeout must be a whole number of ms of at least 1, got ${String(timeout)}`,
    )
  }
}

/** ioredis with `stringNumbers: true` answers integers as strings; the shared Redis code expects numbers. */
function integerReply(reply: unknown): unknown {
  return typeof reply === 'string' && /^-?\d{1,15}$/.test(reply) ? Number(reply) : reply
}
