/** @module upstashStore(): sessions in Upstash Redis over HTTP, shared by every edge instance. */

import type { Redis } from '@upstash/redis'
import type { ServerStore } from '../store.ts'
import { createRedisStore, type RedisCommands } from './redis-core.ts'
import { storeConfigError } from './shared.ts'

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
 * Keeps each session as a Redis hash in Upstash, reached over HTTP from any runtime. A read is one `HGETALL`, every
 * write one Lua script (by `EVALSHA`): one HTTP round trip each, atomic, never recreating a destroyed session,
 * merging concurrent changes to different keys. A Global database reads from replicas, so a destroyed session may
 * still be read for a moment elsewhere. Requires Redis 5.0 or later.
 *
 * @param options `redis`, an `@upstash/redis` client; `prefix` for the keys, default `'sess:'`.
 * @example
 * ```ts
 * const sessions = createSessions({ store: upstashStore({ redis: Redis.fromEnv(env) }), secrets: [secret] })
 * ```
 * @see docs/upstash.md and docs/redis.md for layout, round trips, retries and errors; {@link ServerStore}.
 */
export function upstashStore(options: UpstashStoreOptions): ServerStore {
  const { redis, prefix = 'sess:' } = options ?? {}
  if (
    typeof redis?.eval !== 'function' ||
    typeof redis.evalsha !== 'function' ||
    typeof redis.hgetall !== 'function'
  ) {
    throw storeConfigError('upstashStore', 'needs an @upstash/redis client as `redis`')
  }
  const commands: RedisCommands = {
    hgetall: (key) => redis.hgetall(key),
    eval: (script, keys, args) => redis.eval(script, [...keys], [...args]),
    evalsha: (sha1, keys, args) => redis.evalsha(sha1, [...keys], [...args]),
  }
  return createRedisStore({ name: 'upstash', prefix, commands })
}
