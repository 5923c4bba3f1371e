/** @module Cloudflare Workers KV store: one JSON value per session, within KV's TTL and write-rate limits. */

import { SessionError } from '../errors.ts'
import type { ServerStore, SessionMeta, SessionRecord, StoreContext, StoreTimingOptions } from '../store.ts'
import { applyPatch, parseStoredRecord, sleep, storeConfigError, userEntryOf, utf8Length } from './shared.ts'

/**
 * The part of a Workers `KVNamespace` binding this store uses. Structural, so a real binding fits it and
 * `@cloudflare/workers-types` stays optional.
 */
export interface KvNamespace {
  get(key: string, options: { type: 'text'; cacheTtl?: number }): Promise<string | null>
  put(
    key: string,
    value: string,
    options: { expirationTtl: number; metadata: KvRecordMetadata | KvUserEntryMetadata },
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

/**
 * Metadata of a session's entry in its user's index, `<prefix>u:<user key>:<hashed id>` (an empty value): what
 * listing the index needs, so `list()` alone answers it.
 */
export interface KvUserEntryMetadata {
  /** The session's handle. */
  handle: string
  /** The session's deadline (ms, on the sessions' clock), as in its record's metadata. */
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
/** Where the user index lives after the prefix: `<prefix>u:<user key>:<hashed id>`. */
const USERS = 'u:'
/**
 * KV keys are at most 512 bytes. The longest after the prefix is a user-index entry: `u:`, a user key and a
 * hashed id (43 base64url characters each, SHA-256) and a colon.
 */
const MAX_PREFIX_BYTES = 512 - (USERS.length + 43 + 1 + 43)
/** KV values are at most 25 MiB. */
const MAX_VALUE_BYTES = 25 * 1024 * 1024
/** After a `429` (a second write to the key within a second), wait out KV's window, then redo the write. */
const RATE_LIMIT_WAIT_MS = 1_000
const MAX_WRITE_ATTEMPTS = 3

/**
 * A session store in Cloudflare Workers KV: one JSON value per session, with an `expirationTtl` of at least 60 s.
 * KV takes one write per second per key and has no TTL-only update: a touch is a rewrite, at most once a minute.
 * It is eventually consistent, with no conditional write: overlapping changes keep the last one, and a logout or
 * revocation is best effort for about 60 s. Where they must be immediate, use the Upstash store.
 *
 * @param options `namespace`, the binding or `(env) => env.SESSIONS`; `prefix`, default `'sess:'`.
 * @throws SessionError `ERR_CONFIG` for a bad namespace, prefix or `idleTimeout`; `ERR_TOO_LARGE` past 25 MiB.
 * @example
 * ```ts
 * const sessions = createSessions({ store: cloudflareKvStore({ namespace: (env: Env) => env.SESSIONS }), secrets })
 * ```
 * @see docs/cloudflare-kv.md for what each request costs, KV's limits and what KV cannot promise.
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

  /** Every user's index lies under this; a user's under `users + user key + ':'`. */
  const users = prefix + USERS
  const entryName = (user: string, key: string) => `${users}${user}:${key}`

  /**
   * Writes the index entry of a record bound to a user: an empty value under the entry's name, with the record's
   * TTL (so KV expires both together) and its handle and deadline as metadata. Undefined for other records.
   */
  const putEntry = (kv: KvNamespace, key: string, meta: SessionMeta, ttl: number, signal: AbortSignal) => {
    const entry = userEntryOf(meta)
    if (!entry) return undefined
    const metadata: KvUserEntryMetadata = { handle: entry.handle, expiresAt: meta.expiresAt }
    const name = entryName(entry.user, key)
    return retryRateLimited(signal, () => kv.put(name, '', { expirationTtl: ttlSeconds(ttl), metadata }))
  }

  const deleteEntry = (kv: KvNamespace, user: string, key: string, signal: AbortSignal) =>
    retryRateLimited(signal, () => kv.delete(entryName(user, key)))

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
      // The record and its index entry side by side: KV has no transaction to put them in.
      const writeNew = () =>
        Promise.all([
          retryRateLimited(ctx.signal, () => write(kv, key, value, record, ttl)),
          putEntry(kv, key, record.meta, ttl, ctx.signal),
        ])
      if (replaces === undefined) {
        await writeNew()
        return true
      }
      // No conditional write in KV: check that the old session still exists (a destroy seen here is not
      // undone), then write the new record and delete the old one concurrently.
      const old = await readFresh(kv, prefix + replaces)
      if (old === null) {
        // Gone: destroyed meanwhile, or moved by an earlier attempt of this very call (the new key is a fresh
        // id that nothing else writes), which has then succeeded: its index entry is written again, in case
        // that attempt failed after its record landed.
        if ((await readFresh(kv, prefix + key)) === null) return false
        await putEntry(kv, key, record.meta, ttl, ctx.signal)
        return true
      }
      ctx.signal.throwIfAborted()
      // The old record's index entry goes with it: the one its stored metadata names.
      const moved = userEntryOf(old.meta)
      await Promise.all([
        writeNew(),
        retryRateLimited(ctx.signal, () => kv.delete(prefix + replaces)),
        moved && deleteEntry(kv, moved.user, replaces, ctx.signal),
      ])
      return true
    },

    async patch(key, patch, ttl, ctx) {
      const kv = kvFor(ctx)
      const written = await retryRateLimited(ctx.signal, async () => {
        // Re-read as fresh as KV allows, so keys and flash markers another request changed meanwhile are kept
        // (on a retry too). A destroy that lands between this read and the write below is undone: KV has no
        // conditional write (docs/cloudflare-kv.md).
        const current = await readFresh(kv, prefix + key)
        if (current === null) return null
        const record = applyPatch(current, patch)
        const value = encode(record)
        // The sessions layer has given up on a call past its storeTimeout: a late write must not land.
        ctx.signal.throwIfAborted()
        await write(kv, key, value, record, ttl)
        return { record, value }
      })
      if (written === null) return false
      // The index entry after its record, not beside it: a session that this write brings back after a
      // revocation (the race above) is listed again, so it can be seen and revoked.
      await putEntry(kv, key, written.record.meta, ttl, ctx.signal)
      // The merged record this call wrote, decoded as `get` decodes it: as fresh as the read before the write
      // (KV has no atomic read-modify-write, docs/cloudflare-kv.md).
      return ctx.returnRecord ? (parseStoredRecord(written.value) ?? true) : true
    },

    async delete(key, ctx) {
      const kv = kvFor(ctx)
      // The sessions layer names the record's index entry: both go at once, with no read first.
      const user = ctx.user?.user
      await Promise.all([
        retryRateLimited(ctx.signal, () => kv.delete(prefix + key)),
        user !== undefined && deleteEntry(kv, user, key, ctx.signal),
      ])
    },

    async count(ctx) {
      // Counts the keys KV still holds: KV removes expired ones itself, and the store does not judge expiry by
      // its own clock. One list call per 1000 keys, each eventually consistent; index entries are listed too
      // (they share the prefix) and skipped.
      let total = 0
      for await (const { name } of listAll(kvFor(ctx), prefix, ctx.signal))
        if (!name.startsWith(users)) total++
      return total
    },

    async userEntries(user, ctx) {
      const index = `${users}${user}:`
      const found: Array<{ key: string; handle: string }> = []
      for await (const { name, metadata } of listAll(kvFor(ctx), index, ctx.signal)) {
        // A damaged entry (no handle in its metadata, a name of another shape) is skipped, never an error.
        const key = name.slice(index.length)
        if (key === '' || key.includes(':') || !isEntryMetadata(metadata)) continue
        found.push({ key, handle: metadata.handle })
      }
      return found
    },

    async getMany(keys, ctx) {
      const kv = kvFor(ctx)
      // One read per key, all at once; with KV's default edge cache, as a load reads.
      return Promise.all(
        keys.map(async (key) => {
          const text = await kv.get(prefix + key, { type: 'text' })
          return text === null ? null : parseStoredRecord(text)
        }),
      )
    },

    async revokeUser(user, keys, ctx) {
      const kv = kvFor(ctx)
      const unique = [...new Set(keys)]
      // Read as fresh as KV allows, to tell this user's sessions from others'.
      const texts = await Promise.all(
        unique.map((key) => kv.get(prefix + key, { type: 'text', cacheTtl: FRESH_READ_CACHE_TTL })),
      )
      let revoked = 0
      await Promise.all(
        unique.map((key, i) => {
          const text = texts[i] ?? null
          const mine = text !== null && parseStoredRecord(text)?.meta.user?.key === user
          if (mine) revoked++
          // A record this location does not see yet (written elsewhere less than a minute ago, named by this
          // user's index) is deleted too: deleting a missing key is harmless. Another user's record, or a value
          // that is no record, is left alone. The entry in this user's index goes in any case.
          return Promise.all([
            (mine || text === null) && retryRateLimited(ctx.signal, () => kv.delete(prefix + key)),
            deleteEntry(kv, user, key, ctx.signal),
          ])
        }),
      )
      return revoked
    },

    async countUsers(ctx) {
      // Listed in key order, so a user's entries come together: a user counts once. One list call per 1000
      // sessions bound to users, each eventually consistent.
      let count = 0
      let last: string | undefined
      for await (const { name, metadata } of listAll(kvFor(ctx), users, ctx.signal)) {
        // A damaged entry (no handle in its metadata, a name of another shape) is skipped, never an error.
        const end = name.indexOf(':', users.length)
        const user = name.slice(users.length, end)
        if (end <= users.length || user === last || !isEntryMetadata(metadata)) continue
        count++
        last = user
      }
      return count
    },
  }
}

/** Every key under `prefix`, a `list()` call per 1000, with its metadata; keys of another shape are skipped. */
async function* listAll(
  kv: KvNamespace,
  prefix: string,
  signal: AbortSignal,
): AsyncGenerator<{ name: string; metadata: unknown }> {
  let cursor: string | undefined
  do {
    signal.throwIfAborted()
    const page = await kv.list(cursor === undefined ? { prefix } : { prefix, cursor })
    for (const key of page.keys) {
      if (typeof key !== 'object' || key === null) continue
      const { name, metadata } = key as { name?: unknown; metadata?: unknown }
      if (typeof name === 'string') yield { name, metadata }
    }
    cursor = page.list_complete ? undefined : page.cursor
  } while (cursor)
}

function isEntryMetadata(value: unknown): value is KvUserEntryMetadata {
  return (
    typeof value === 'object' && value !== null && typeof (value as { handle?: unknown }).handle === 'string'
  )
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
