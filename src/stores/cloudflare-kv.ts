/** @module Cloudflare Workers KV store: one JSON value per session, within KV's TTL and write-rate limits. */

import { SessionError } from '../errors.ts'
import type {
  RecordPatch,
  ServerStore,
  SessionData,
  SessionRecord,
  StoreContext,
  StoreTimingOptions,
} from '../store.ts'

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
const MIN_TOUCH_INTERVAL_MS = 60_000
/** The smallest `cacheTtl` KV accepts: the freshest read short of none, used before a write. */
const FRESH_READ_CACHE_TTL = 30
/** KV keys are at most 512 bytes; a hashed id (base64url SHA-256) is 43. */
const MAX_PREFIX_BYTES = 512 - 43
/** After a `429` (a second write to the key within a second), wait out KV's window, then redo the write. */
const RATE_LIMIT_WAIT_MS = 1_000
const MAX_WRITE_ATTEMPTS = 3

/**
 * A session store in Cloudflare Workers KV.
 *
 * Each session is one JSON value under `prefix + hashed id`, its deadline copied into KV metadata, written with
 * an `expirationTtl` of at least 60 seconds (KV's minimum). KV has no TTL-only update, so a touch is a rewrite,
 * made at most once a minute per session. A write KV refuses with 429 (one write per second per key) is retried
 * after a second. KV is eventually consistent and has no transactions:
 * - changes to one session whose read and write overlap (two locations, or two isolates): the last one wins;
 * - another location may read a value up to 60 seconds old, so a logout (or a regenerate) may take that long
 *   to reach it;
 * - regenerate checks the old record, then writes the new one and deletes the old one concurrently: a destroy
 *   of the old session in another location during that window is not seen, and may be undone.
 * When that matters, use the Upstash store. More in docs/cloudflare-kv.md.
 *
 * @param options.namespace The KV binding, or `(env) => env.SESSIONS` to take it from the bindings each
 *   request brings (`sessions.load(request, env)`; the Hono middleware passes `c.env`).
 * @param options.prefix Added before every key; default `'sess:'`.
 * @returns A store for `createSessions({ store })`. Its `count()` lists the prefix: one KV `list` call per
 *   1000 sessions.
 * @throws SessionError `ERR_CONFIG` when `namespace` is missing or not a KV namespace, or the prefix is too
 *   long for a KV key; from `createSessions` when `idleTimeout` is under 60 seconds.
 *
 * @example
 * ```ts
 * import { createSessions } from 'edge-session'
 * import { cloudflareKvStore } from 'edge-session/stores/cloudflare-kv'
 *
 * const sessions = createSessions<{ count?: number }>({
 *   store: cloudflareKvStore({ namespace: (env: Env) => env.SESSIONS }),
 *   secrets: [SECRET],
 * })
 *
 * export default {
 *   async fetch(request: Request, env: Env) {
 *     const session = await sessions.load(request, env)
 *     session.set('count', (session.get('count') ?? 0) + 1)
 *     return sessions.commit(session, new Response(String(session.get('count'))))
 *   },
 * }
 * ```
 * @see https://developers.cloudflare.com/kv/concepts/how-kv-works/ (consistency)
 * @see https://developers.cloudflare.com/kv/platform/limits/ (60 s TTL, one write per second per key)
 */
export function cloudflareKvStore<Env = Record<string, KvNamespace>>(
  options: CloudflareKvStoreOptions<Env>,
): ServerStore {
  const { namespace, prefix = 'sess:' } = options ?? ({} as CloudflareKvStoreOptions<Env>)
  if (typeof namespace !== 'function' && !isKvNamespace(namespace)) {
    throw new SessionError(
      'ERR_CONFIG',
      'cloudflareKvStore: `namespace` must be a KV namespace binding or a function (env) => binding',
    )
  }
  if (typeof prefix !== 'string' || new TextEncoder().encode(prefix).length > MAX_PREFIX_BYTES) {
    throw new SessionError(
      'ERR_CONFIG',
      `cloudflareKvStore: \`prefix\` must be a string of at most ${MAX_PREFIX_BYTES} bytes`,
    )
  }

  const kvFor = (ctx: StoreContext): KvNamespace => {
    if (typeof namespace !== 'function') return namespace
    if (ctx.env === undefined || ctx.env === null) {
      throw new SessionError(
        'ERR_CONFIG',
        'cloudflareKvStore: `namespace` takes the KV binding from the Workers env, but none was passed: call ' +
          'sessions.load(request, env)',
      )
    }
    const kv = namespace(ctx.env as Env)
    if (!isKvNamespace(kv)) {
      throw new SessionError(
        'ERR_CONFIG',
        'cloudflareKvStore: the `namespace` function returned no KV namespace; is the binding declared in the ' +
          'Wrangler configuration, and is `env` passed to sessions.load(request, env)?',
      )
    }
    return kv
  }

  const write = (kv: KvNamespace, key: string, record: SessionRecord, ttl: number) =>
    kv.put(prefix + key, JSON.stringify(record), {
      expirationTtl: ttlSeconds(ttl),
      metadata: { expiresAt: record.meta.expiresAt },
    })

  return {
    kind: 'server',
    name: 'cloudflare-kv',
    minTtl: MIN_TTL_SECONDS * 1000,
    minTouchInterval: MIN_TOUCH_INTERVAL_MS,

    validate({ idleTimeout }: StoreTimingOptions) {
      if (idleTimeout < MIN_TTL_SECONDS) {
        throw new SessionError(
          'ERR_CONFIG',
          `cloudflareKvStore: idleTimeout must be at least ${MIN_TTL_SECONDS} seconds (KV keeps no shorter TTL)`,
        )
      }
    },

    async get(key, ctx) {
      // KV's default edge cache (60 s): the read-only path is the hot one.
      return parseRecord(await kvFor(ctx).get(prefix + key, { type: 'text' }))
    },

    async set(key, record, ttl, ctx, replaces) {
      const kv = kvFor(ctx)
      const writeNew = () => retryRateLimited(ctx.signal, () => write(kv, key, record, ttl))
      if (replaces === undefined) {
        await writeNew()
        return true
      }
      // No conditional write in KV: check that the old session still exists (a destroy seen here is not
      // undone), then write the new record and delete the old one concurrently.
      const fresh = { type: 'text', cacheTtl: FRESH_READ_CACHE_TTL } as const
      if (parseRecord(await kv.get(prefix + replaces, fresh)) === null) {
        // Gone: destroyed meanwhile, or moved by an earlier attempt of this very call (the new key is a fresh
        // id that nothing else writes), which has then succeeded.
        return parseRecord(await kv.get(prefix + key, fresh)) !== null
      }
      ctx.signal.throwIfAborted()
      await Promise.all([writeNew(), retryRateLimited(ctx.signal, () => kv.delete(prefix + replaces))])
      return true
    },

    async patch(key, patch, ttl, ctx) {
      const kv = kvFor(ctx)
      return retryRateLimited(ctx.signal, async () => {
        // Re-read as fresh as KV allows, so keys another request changed meanwhile are kept (on a retry too).
        const current = parseRecord(
          await kv.get(prefix + key, { type: 'text', cacheTtl: FRESH_READ_CACHE_TTL }),
        )
        if (current === null) return false
        // The sessions layer has given up on a call past its storeTimeout: a late write must not land.
        ctx.signal.throwIfAborted()
        await write(kv, key, { data: applyPatch(current.data, patch), meta: patch.meta }, ttl)
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
    await delay(RATE_LIMIT_WAIT_MS + Math.random() * 100, signal)
  }
}

/** The Workers KV binding rejects with `Error('KV PUT failed: 429 Too Many Requests')`: no code to test. */
function isRateLimited(error: unknown): boolean {
  return error instanceof Error && /\b429\b/.test(error.message)
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    signal.throwIfAborted()
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
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

/** A stored value back to a record; anything that is not one (foreign or damaged) reads as missing. */
function parseRecord(text: string | null): SessionRecord | null {
  if (text === null) return null
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return null
  }
  if (!isObject(value) || !isObject(value.data) || !isObject(value.meta)) return null
  const { createdAt, lastSeenAt, expiresAt } = value.meta
  if (![createdAt, lastSeenAt, expiresAt].every((n) => typeof n === 'number' && Number.isFinite(n)))
    return null
  return value as unknown as SessionRecord
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function applyPatch(data: SessionData, patch: RecordPatch): SessionData {
  const next: SessionData = { ...data }
  for (const key of patch.delete) delete next[key]
  // defineProperty, not assignment: a data key named `__proto__` must stay a key, not swap the prototype.
  for (const [key, value] of Object.entries(patch.set)) {
    Object.defineProperty(next, key, { value, enumerable: true, writable: true, configurable: true })
  }
  return next
}
