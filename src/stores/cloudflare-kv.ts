/** @module Cloudflare Workers KV store: one JSON value per session, within KV's TTL and write-rate limits. */

import { SessionError } from '../errors.ts'
import type { ServerStore, SessionRecord, StoreContext, StoreTimingOptions } from '../store.ts'
import { applyPatch, parseStoredRecord, sleep, storeConfigError, utf8Length } from './shared.ts'

/**
 * The part of a Workers `KVNamespace` binding this store uses. Structural, so a real binding fits it and
 * `@cloudflare/workers-types` stays optional.
 */
export interface KvNamespace {
  get(key: string, options: { type: 'text'; cacheTtl?: number }): Promise<string | null>
  put(
    key: string,
    value: string,
    options: { expirationTtl: number; metadata: KvRecordMetadata },
  ): Promise<void>
  delete(key: string): Promise<void>
  list(options: { prefix: string; cursor?: string | null }): Promise<KvListPage>
}

/** One page of `KVNamespace.list()`: at most 1000 keys. */
export interface KvListPage {
  keys: readonly unknown[]
  list_complete: boolean
  cursor?: string
}

/** Metadata written beside each record, readable through `list()` without fetching values. */
export interface KvRecordMetadata {
  /** The record's deadline (ms, on the sessions' clock): `meta.expiresAt`. */
  expiresAt: number
}

export interface CloudflareKvStoreOptions<Env = Record<string, KvNamespace>> {
  /** The KV binding, or a function that picks it from the bindings passed to `sessions.load(request, env)`. */
  namespace: KvNamespace | ((env: Env) => KvNamespace | null | undefined)
  /** Added before every key. Default `'sess:'`. Give sessions a prefix of their own: `count()` counts it all. */
  prefix?: string
}

/** Cloudflare KV refuses an `expirationTtl` under 60 seconds. */
const MIN_TTL_SECONDS = 60
/** KV allows one write per second per key; a touch is a whole rewrite, so touches wait at least this long. */
const MIN_TOUCH_INTERVAL_SECONDS = 60
/**
 * What `idleTimeout` must leave beyond the touch interval: a user who comes back just before a touch is due is
 * not touched, so the next request must still find the session alive. A user seen once a minute stays signed in.
 */
const IDLE_MARGIN_SECONDS = 60
/** The smallest `cacheTtl` KV accepts: the freshest read short of none, used before a write. */
const FRESH_READ_CACHE_TTL = 30
/** KV keys are at most 512 bytes; a hashed id (base64url SHA-256) is 43. */
const MAX_PREFIX_BYTES = 512 - 43
/** KV values are at most 25 MiB. */
const MAX_VALUE_BYTES = 25 * 1024 * 1024
/** After a `429` (a second write to the key within a second), wait out KV's window, then redo the write. */
const RATE_LIMIT_WAIT_MS = 1_000
const MAX_WRITE_ATTEMPTS = 3

/**
 * A session store in Cloudflare Workers KV: one JSON value per session under `prefix + hashed id`, its deadline
 * copied into KV metadata, with an `expirationTtl` of at least 60 s. KV has no TTL-only update and takes one write
 * per second per key: a touch is a rewrite made at most once a minute, a write refused with 429 is retried after
 * a second, and `idleTimeout` must be at least `max(touchInterval, 60) + 60` seconds.
 *
 * KV is eventually consistent and has no conditional write. Overlapping changes to one session keep the last one,
 * and a change or touch that read the session before a logout landed (or from a cache up to 60 s old) writes it
 * back with a full idle lifetime: logout and revocation are best effort within that window. Where they must be
 * immediate, use the Upstash store (or `durableObjectStore`, planned). The whole story: docs/cloudflare-kv.md.
 *
 * @param options `namespace`, the binding or `(env) => env.SESSIONS`; `prefix`, default `'sess:'`.
 * @throws SessionError `ERR_CONFIG` for a missing namespace, a prefix over 469 bytes, or (from `createSessions`)
 *   an `idleTimeout` KV cannot keep alive; `ERR_TOO_LARGE` from a write over KV's 25 MiB value limit.
 * @example
 * ```ts
 * const sessions = createSessions({ store: cloudflareKvStore({ namespace: (env: Env) => env.SESSIONS }), secrets })
 * const session = await sessions.load(request, env) // in fetch(request, env)
 * ```
 */
export function cloudflareKvStore<Env = Record<string, KvNamespace>>(
  options: CloudflareKvStoreOptions<Env>,
): ServerStore {
  const { namespace, prefix = 'sess:' } = options ?? ({} as CloudflareKvStoreOptions<Env>)
  if (typeof namespace !== 'function' && !isKvNamespace(namespace)) {
    throw storeConfigError(
      'cloudflareKvStore',
      '`namespace` must be a KV namespace binding or a function (env) => binding',
    )
  }
  if (typeof prefix !== 'string' || utf8Length(prefix) > MAX_PREFIX_BYTES) {
    throw storeConfigError(
      'cloudflareKvStore',
      `\`prefix\` must be a string of at most ${MAX_PREFIX_BYTES} bytes`,
    )
  }

  const kvFor = (ctx: StoreContext): KvNamespace => {
    if (typeof namespace !== 'function') return namespace
    if (ctx.env === undefined || ctx.env === null) {
      throw storeConfigError(
        'cloudflareKvStore',
        '`namespace` takes the KV binding from the Workers env, but none was passed: call ' +
          'sessions.load(request, env)',
      )
    }
    const kv = namespace(ctx.env as Env)
    if (!isKvNamespace(kv)) {
      throw storeConfigError(
        'cloudflareKvStore',
        'the `namespace` function returned no KV namespace; is the binding declared in the ' +
          'Wrangler configuration, and is `env` passed to sessions.load(request, env)?',
      )
    }
    return kv
  }

  const write = (kv: KvNamespace, key: string, value: string, record: SessionRecord, ttl: number) =>
    kv.put(prefix + key, value, {
      expirationTtl: ttlSeconds(ttl),
      metadata: { expiresAt: record.meta.expiresAt },
    })

  return {
    kind: 'server',
    name: 'cloudflare-kv',
    minTtl: MIN_TTL_SECONDS * 1000,
    minTouchInterval: MIN_TOUCH_INTERVAL_SECONDS * 1000,

    validate({ idleTimeout, touchInterval }: StoreTimingOptions) {
      const touchEvery = Math.max(touchInterval, MIN_TOUCH_INTERVAL_SECONDS)
      const floor = touchEvery + IDLE_MARGIN_SECONDS
      if (idleTimeout < floor) {
        throw storeConfigError(
          'cloudflareKvStore',
          `idleTimeout must be at least ${floor} seconds, got ${idleTimeout}: KV touches a session at most ` +
            `every ${touchEvery} s (the larger of touchInterval and KV's 60 s floor), and a user who comes back ` +
            `just before a touch is due needs ${IDLE_MARGIN_SECONDS} s more to find the session alive`,
        )
      }
    },

    async get(key, ctx) {
      // KV's default edge cache (60 s): the read-only path is the hot one.
      const text = await kvFor(ctx).get(prefix + key, { type: 'text' })
      return text === null ? null : parseStoredRecord(text)
    },

    async set(key, record, ttl, ctx, replaces) {
      const kv = kvFor(ctx)
      // Encoded (and its size checked) before anything is written or deleted.
      const value = encode(record)
      const writeNew = () => retryRateLimited(ctx.signal, () => write(kv, key, value, record, ttl))
      if (replaces === undefined) {
        await writeNew()
        return true
      }
      // No conditional write in KV: check that the old session still exists (a destroy seen here is not
      // undone), then write the new record and delete the old one concurrently.
      if ((await readFresh(kv, prefix + replaces)) === null) {
        // Gone: destroyed meanwhile, or moved by an earlier attempt of this very call (the new key is a fresh
        // id that nothing else writes), which has then succeeded.
        return (await readFresh(kv, prefix + key)) !== null
      }
      ctx.signal.throwIfAborted()
      await Promise.all([writeNew(), retryRateLimited(ctx.signal, () => kv.delete(prefix + replaces))])
      return true
    },

    async patch(key, patch, ttl, ctx) {
      const kv = kvFor(ctx)
      return retryRateLimited(ctx.signal, async () => {
        // Re-read as fresh as KV allows, so keys and flash markers another request changed meanwhile are kept
        // (on a retry too). A destroy that lands between this read and the write below is undone: KV has no
        // conditional write (docs/cloudflare-kv.md).
        const current = await readFresh(kv, prefix + key)
        if (current === null) return false
        const record = applyPatch(current, patch)
        const value = encode(record)
        // The sessions layer has given up on a call past its storeTimeout: a late write must not land.
        ctx.signal.throwIfAborted()
        await write(kv, key, value, record, ttl)
        return true
      })
    },

    async delete(key, ctx) {
      const kv = kvFor(ctx)
      await retryRateLimited(ctx.signal, () => kv.delete(prefix + key))
    },

    async count(ctx) {
      // Counts the keys KV still holds: KV removes expired ones itself, and the store does not judge expiry by
      // its own clock. One list call per 1000 keys, each eventually consistent.
      const kv = kvFor(ctx)
      let total = 0
      let cursor: string | undefined
      do {
        ctx.signal.throwIfAborted()
        const page = await kv.list(cursor === undefined ? { prefix } : { prefix, cursor })
        total += page.keys.length
        cursor = page.list_complete ? undefined : page.cursor
      } while (cursor)
      return total
    },
  }
}

/** The record under `key`, read as fresh as KV allows; a value that is not a record (foreign, damaged) is null. */
async function readFresh(kv: KvNamespace, key: string): Promise<SessionRecord | null> {
  const text = await kv.get(key, { type: 'text', cacheTtl: FRESH_READ_CACHE_TTL })
  return text === null ? null : parseStoredRecord(text)
}

/** The record as the JSON text KV keeps; `ERR_TOO_LARGE` past KV's value limit, before any write. */
function encode(record: SessionRecord): string {
  const value = JSON.stringify(record)
  // UTF-8 takes at most 3 bytes per UTF-16 unit: only a value that long can be over, and only it is counted.
  if (value.length * 3 > MAX_VALUE_BYTES) {
    const bytes = utf8Length(value)
    if (bytes > MAX_VALUE_BYTES) {
      throw new SessionError(
        'ERR_TOO_LARGE',
        `cloudflareKvStore(): the session takes ${bytes} bytes; KV keeps values of at most 25 MiB (${MAX_VALUE_BYTES} bytes)`,
      )
    }
  }
  return value
}

/**
 * Runs `attempt` again when KV refuses a write with 429: KV takes one write per second per key, so two requests
 * changing one session at once (or a logout right after a write) collide. A patch's retry re-reads, so both
 * changes are kept. Gives up after three attempts, or when the sessions layer aborts (storeTimeout).
 */
async function retryRateLimited<T>(signal: AbortSignal, attempt: () => Promise<T>): Promise<T> {
  for (let attempts = 1; ; attempts++) {
    try {
      return await attempt()
    } catch (error) {
      if (attempts >= MAX_WRITE_ATTEMPTS || !isRateLimited(error)) throw error
    }
    await sleep(RATE_LIMIT_WAIT_MS + Math.random() * 100, signal)
  }
}

/** The Workers KV binding rejects with `Error('KV PUT failed: 429 Too Many Requests')`: no code to test. */
function isRateLimited(error: unknown): boolean {
  return error instanceof Error && /\b429\b/.test(error.message)
}

function isKvNamespace(value: unknown): value is KvNamespace {
  if (typeof value !== 'object' || value === null) return false
  const kv = value as Record<string, unknown>
  return ['get', 'put', 'delete', 'list'].every((method) => typeof kv[method] === 'function')
}

/** Relative ms to KV's whole seconds, rounded up (never expire before the deadline) and at least 60. */
function ttlSeconds(ttl: number): number {
  return Math.max(MIN_TTL_SECONDS, Math.ceil(ttl / 1000))
}
