/** @module upstashStore(): sessions in Upstash Redis over HTTP, shared by every edge instance. */

import type { Redis } from '@upstash/redis'
import { SessionError } from '../errors.ts'
import type { ServerStore } from '../store.ts'
import { createRedisStore, type RedisCommands } from './redis-core.ts'

/**
 * The part of an `@upstash/redis` client this store uses. A `Redis` from `@upstash/redis` (Node, Vercel, Deno,
 * Bun) and one from `@upstash/redis/cloudflare` both fit.
 */
export type UpstashRedisClient = Pick<Redis, 'hgetall' | 'eval' | 'evalsha'>

export interface UpstashStoreOptions {
  /** The client, such as `Redis.fromEnv()`, with any options: the store's encoding does not depend on them. */
  redis: UpstashRedisClient
  /** Put before every key this store writes. Default `'sess:'`. */
  prefix?: string
}

/**
 * Keeps each session as a Redis hash (one field per data key, plus its deadlines) in Upstash, reached over HTTP
 * from any runtime. Every call is one HTTP round trip: a read is `HGETALL`, every write one Lua script (`EVALSHA`),
 * so writes are atomic, a patch never recreates a destroyed or expired session, a regenerate deletes the old
 * record in the same step, and two requests changing different keys of one session both persist. Live sessions
 * are counted in a sorted set kept in those same scripts.
 *
 * The client's own retries and auto-pipelining apply. It takes no per-call abort signal, so a store call that
 * outlives `storeTimeout` fails at the sessions layer while the client finishes (or retries) in the background;
 * each write is a whole script, so what lands is never half a write.
 *
 * @param options `redis`, an `@upstash/redis` client; `prefix` for the keys, default `'sess:'`.
 * @example
 * ```ts
 * import { Redis } from '@upstash/redis/cloudflare'
 * import { createSessions } from 'edge-session'
 * import { upstashStore } from 'edge-session/stores/upstash'
 *
 * const sessions = createSessions({
 *   store: upstashStore({ redis: Redis.fromEnv(env), prefix: 'myapp:sess:' }),
 *   secrets: [env.SESSION_SECRET],
 * })
 * ```
 * @see {@link https://upstash.com/docs/redis/features/restapi} for the REST API it speaks.
 * @see {@link ServerStore} for the contract it implements.
 */
export function upstashStore(options: UpstashStoreOptions): ServerStore {
  const { redis, prefix = 'sess:' } = options ?? {}
  if (
    typeof redis?.eval !== 'function' ||
    typeof redis.evalsha !== 'function' ||
    typeof redis.hgetall !== 'function'
  ) {
    throw new SessionError('ERR_CONFIG', 'upstashStore() needs an @upstash/redis client as `redis`')
  }
  const commands: RedisCommands = {
    hgetall: (key) => redis.hgetall(key),
    eval: (script, keys, args) => redis.eval(script, [...keys], [...args]),
    evalsha: (sha1, keys, args) => redis.evalsha(sha1, [...keys], [...args]),
  }
  return createRedisStore({ name: 'upstash', prefix, commands })
}
