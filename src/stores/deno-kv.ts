/** @module denoKvStore(): sessions in Deno KV (a local SQLite file, or Deno Deploy's shared KV), one entry per session. */

import { SessionError } from '../errors.ts'
import type { ServerStore, SessionData, SessionMeta, SessionRecord, SessionTimes } from '../store.ts'
import { applyPatch, sleep, storeConfigError, storedData, utf8, withMeta } from './shared.ts'

/** A part of a Deno KV key. */
export type DenoKvKeyPart = Uint8Array | string | number | bigint | boolean

/** A Deno KV key: its parts, outermost first. */
export type DenoKvKey = readonly DenoKvKeyPart[]

/**
 * The part of a `Deno.Kv` this store uses. Structural, so `await Deno.openKv()` fits it and src/ compiles
 * without Deno's types.
 */
export interface DenoKv {
  get(key: DenoKvKey): Promise<{ value: unknown; versionstamp: string | null }>
  set(key: DenoKvKey, value: unknown, options?: { expireIn?: number }): Promise<unknown>
  delete(key: DenoKvKey): Promise<void>
  list(selector: { prefix: DenoKvKey }): AsyncIterable<{ value: unknown }>
  atomic(): DenoKvAtomicOperation
}

/** The part of a `Deno.AtomicOperation` this store uses. */
export interface DenoKvAtomicOperation {
  check(...checks: { key: DenoKvKey; versionstamp: string | null }[]): DenoKvAtomicOperation
  set(key: DenoKvKey, value: unknown, options?: { expireIn?: number }): DenoKvAtomicOperation
  delete(key: DenoKvKey): DenoKvAtomicOperation
  /** `{ ok: false }` when a check failed (another writer came first); throws on other failures. */
  commit(): Promise<{ ok: boolean }>
}

export interface DenoKvStoreOptions {
  /** The database: `await Deno.openKv()`, or `Deno.openKv(path)` for a file of its own. */
  kv: DenoKv
  /**
   * Key parts put before each session's hashed id. Default `['sess']`, so a session lives under
   * `['sess', <hashed id>]`. Give sessions a prefix of their own: `count()` counts every entry under it.
   */
  prefix?: DenoKvKey
  /** Attempts at a read-check-write before a write that keeps meeting concurrent writers fails. Default 20. */
  maxAttempts?: number
}

/** What one session's entry holds. */
export interface DenoKvSessionValue {
  /** The data as JSON text: parsed back, keys such as `__proto__` stay plain data, and the size is known up front. */
  data: string
  /** Deadlines on the sessions' clock, copied: the sessions layer judges them, this store does not. */
  meta: SessionMeta
  /** When the TTL given with the last write runs out, in ms on this process's clock (see below). */
  ttlEnd: number
}

/** Deno KV refuses values over 64 KiB (as V8 serializes them). */
const MAX_VALUE_BYTES = 65_536
/** Room kept for the value's fixed part (field names, times, the serialization's own bytes): about 110 bytes. */
const VALUE_OVERHEAD_BYTES = 1024
/** Deno KV keys are at most 2048 bytes, encoded as FoundationDB tuples. */
const MAX_KEY_BYTES = 2048
/** The session's own key part: a hashed id (43 base64url characters) as a tuple string, with its two tag bytes. */
const ID_PART_BYTES = 45
/** The largest prefix, encoded, that leaves room for the hashed id. */
const MAX_PREFIX_BYTES = MAX_KEY_BYTES - ID_PART_BYTES

/**
 * A session store in Deno KV: one entry per session under `[...prefix, hashed id]`, for Deno on one machine (a
 * SQLite file shared by the processes that open it) or on Deno Deploy. Each write carries the TTL as `expireIn`;
 * Deno KV expires lazily, so an entry past the TTL's end (kept in the entry) reads as missing. Patches and
 * touches are read-check-write atomic operations retried on conflict (versionstamps), so concurrent changes to
 * different keys and flash markers merge and nothing recreates a destroyed session; a regenerate writes the new
 * entry and deletes the old one in one operation checked against the old. Data may take about 63 KiB (Deno KV's
 * 64 KiB value limit, flash key names included): a larger write fails with `ERR_TOO_LARGE`. `count()` reads every
 * entry under the prefix. Run Deno with `--unstable-kv`. More in docs/deno-kv.md.
 *
 * @param options `kv`, an open `Deno.Kv`; `prefix`, default `['sess']`; `maxAttempts` on conflicts, default 20.
 * @throws SessionError `ERR_CONFIG` when `kv` is not a Deno KV database, or the prefix is not a non-empty array of
 *   key parts that leaves room for the session's own within Deno KV's 2048-byte keys.
 * @example
 * ```ts
 * const sessions = createSessions({ store: denoKvStore({ kv: await Deno.openKv() }), secrets })
 * ```
 */
export function denoKvStore(options: DenoKvStoreOptions): ServerStore {
  const { kv, prefix = ['sess'], maxAttempts = 20 } = options ?? ({} as DenoKvStoreOptions)
  if (!isDenoKv(kv)) throw storeConfigError('denoKvStore', 'needs an open Deno KV database as `kv`')
  const prefixBytes = keyBytes(prefix)
  if (prefixBytes === null || prefixBytes > MAX_PREFIX_BYTES) {
    throw storeConfigError(
      'denoKvStore',
      '`prefix` must be a non-empty array of Deno KV key parts taking at most ' +
        `${MAX_PREFIX_BYTES} bytes encoded${prefixBytes === null ? '' : `, got ${prefixBytes}`}`,
    )
  }
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw storeConfigError('denoKvStore', '`maxAttempts` must be a positive integer')
  }
  const keyOf = (key: string): DenoKvKey => [...prefix, key]

  /** The entry under `key` while its TTL lasts, decoded, with the versionstamp a write checks against. */
  const read = async (key: DenoKvKey) => {
    const entry = await kv.get(key)
    if (entry.versionstamp === null) return null
    const stored = decode(entry.value, key)
    if (stored.ttlEnd <= Date.now()) return null
    return { ...stored, check: { key, versionstamp: entry.versionstamp } }
  }

  /**
   * Optimistic concurrency: `attempt` reads, then commits an operation checked against what it read. A failed
   * check means another writer came first: try again on the fresh entry, after a short random pause so that
   * writers that collided do not collide again in step. The pause ends early when the call is abandoned.
   */
  const retrying = async (
    signal: AbortSignal,
    attempt: () => Promise<boolean | undefined>,
  ): Promise<boolean> => {
    for (let i = 0; i < maxAttempts; i++) {
      signal.throwIfAborted()
      const result = await attempt()
      if (result !== undefined) return result
      await sleep(Math.random() * Math.min(2 ** i, 50), signal)
    }
    throw new SessionError(
      'ERR_STORE',
      `denoKvStore(): a write met concurrent writers ${maxAttempts} times in a row and gave up`,
    )
  }

  /** Rewrites an existing entry, checked against the version read and retried on conflict; false when missing. */
  const rewrite = (
    key: string,
    ttl: number,
    signal: AbortSignal,
    next: (current: StoredEntry) => DenoKvSessionValue,
  ): Promise<boolean> => {
    const full = keyOf(key)
    return retrying(signal, async () => {
      const entry = await read(full)
      if (!entry) return false
      const value = next(entry)
      signal.throwIfAborted()
      const result = await committed(
        kv
          .atomic()
          .check(entry.check)
          .set(full, value, { expireIn: expireIn(ttl) }),
      )
      return result.ok ? true : undefined
    })
  }

  return {
    kind: 'server',
    name: 'deno-kv',

    async get(key) {
      const entry = await read(keyOf(key))
      return entry ? entry.record : null
    },

    async set(key, record, ttl, ctx, replaces) {
      const value = toValue(record, ttl)
      if (replaces === undefined) {
        await tooLargeAsSuch(kv.set(keyOf(key), value, { expireIn: expireIn(ttl) }))
        return true
      }
      const old = keyOf(replaces)
      return retrying(ctx.signal, async () => {
        // Nothing is written unless the old record still exists: a concurrent destroy must not be undone.
        const entry = await read(old)
        // Gone: destroyed meanwhile, or moved by an earlier attempt of this very call (the new key is a fresh id
        // that nothing else writes), which has then succeeded.
        if (!entry) return (await read(keyOf(key))) !== null
        const result = await committed(
          kv
            .atomic()
            .check(entry.check)
            .delete(old)
            .set(keyOf(key), value, { expireIn: expireIn(ttl) }),
        )
        return result.ok ? true : undefined
      })
    },

    patch(key, patch, ttl, ctx) {
      return rewrite(key, ttl, ctx.signal, (current) => toValue(applyPatch(current.record, patch), ttl))
    },

    // Deno KV has no TTL-only update: a touch rewrites the entry, data and flash markers unchanged, checked like
    // a patch. The data text is kept as read, not parsed and written again.
    touch(key, times: SessionTimes, ttl, ctx) {
      return rewrite(key, ttl, ctx.signal, (current) => {
        const flash = current.record.meta.flash
        const meta: SessionMeta = { ...times }
        if (flash) meta.flash = flash
        return { data: current.text, meta, ttlEnd: Date.now() + ttl }
      })
    },

    async delete(key) {
      await kv.delete(keyOf(key))
    },

    async count() {
      const now = Date.now()
      let live = 0
      for await (const entry of kv.list({ prefix })) {
        if (isSessionValue(entry.value) && entry.value.ttlEnd > now) live++
      }
      return live
    },
  }
}

/** An entry read back: the record, the data as the JSON text it was stored as, and the TTL's end. */
interface StoredEntry {
  record: SessionRecord
  text: string
  ttlEnd: number
}

/**
 * The value stored for `record`. `ERR_TOO_LARGE` when Deno KV would refuse it: V8 writes a string in one byte per
 * character when all fit in Latin-1, else two. The data text comes from `JSON.stringify` (one byte per character
 * when it can); flash key names may be held two bytes per character whatever they contain, so count them so.
 */
function toValue(record: SessionRecord, ttl: number): DenoKvSessionValue {
  const text = JSON.stringify(record.data)
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the Latin-1 range starts at U+0000.
  let bytes = (/[^\u0000-\u00ff]/.test(text) ? text.length * 2 : text.length) + VALUE_OVERHEAD_BYTES
  for (const key of record.meta.flash ?? []) bytes += key.length * 2 + 8
  if (bytes > MAX_VALUE_BYTES) {
    throw new SessionError(
      'ERR_TOO_LARGE',
      `denoKvStore(): the session takes about ${bytes} bytes (data, flash key names and ${VALUE_OVERHEAD_BYTES} ` +
        'for the rest); Deno KV keeps values of at most 64 KiB',
    )
  }
  return { data: text, meta: record.meta, ttlEnd: Date.now() + ttl }
}

/** Deno KV takes whole milliseconds; never less than one. */
function expireIn(ttl: number): number {
  return Math.max(1, Math.ceil(ttl))
}

/** Commits `operation`, with Deno KV's own size refusal turned into `ERR_TOO_LARGE`. */
function committed(operation: DenoKvAtomicOperation): Promise<{ ok: boolean }> {
  return tooLargeAsSuch(operation.commit())
}

/** A backstop for a value the estimate in `toValue` let through: Deno KV's `TypeError('Value too large ...')`. */
async function tooLargeAsSuch<T>(write: Promise<T>): Promise<T> {
  try {
    return await write
  } catch (error) {
    if (error instanceof TypeError && /^Value too large/.test(error.message)) {
      throw new SessionError('ERR_TOO_LARGE', `denoKvStore(): ${error.message}`, { cause: error })
    }
    throw error
  }
}

/** An entry's value back to a record; something else under the prefix is an error, not a missing session. */
function decode(value: unknown, key: DenoKvKey): StoredEntry {
  if (isSessionValue(value)) {
    const record = parseData(value.data, value.meta)
    if (record !== null) return { record, text: value.data, ttlEnd: value.ttlEnd }
  }
  // Something else lives under the sessions' prefix: say so rather than overwrite or ignore it.
  throw new Error(`the entry under [${key.map(String).join(', ')}] is not a session record`)
}

/** The data text parsed into a null-prototype object, with `meta` checked; null when either is damaged. */
function parseData(text: string, meta: unknown): SessionRecord | null {
  let data: SessionData | null
  try {
    data = storedData(JSON.parse(text))
  } catch {
    return null
  }
  return data === null ? null : withMeta(data, meta)
}

function isSessionValue(value: unknown): value is DenoKvSessionValue {
  if (typeof value !== 'object' || value === null) return false
  const candidate = value as Partial<DenoKvSessionValue>
  return (
    typeof candidate.data === 'string' &&
    typeof candidate.ttlEnd === 'number' &&
    !Number.isNaN(candidate.ttlEnd) &&
    typeof candidate.meta === 'object' &&
    candidate.meta !== null
  )
}

function isDenoKv(value: unknown): value is DenoKv {
  if (typeof value !== 'object' || value === null) return false
  const kv = value as Record<string, unknown>
  return ['get', 'set', 'delete', 'list', 'atomic'].every((method) => typeof kv[method] === 'function')
}

/**
 * The size of `parts` as Deno KV encodes a key (the FoundationDB tuple layer), or null when they are not a
 * non-empty array of key parts it can encode. Strings (as UTF-8) and byte arrays: a type byte, the bytes with
 * each 0x00 escaped as two, an end byte. Numbers 9, booleans 1. Bigints: a type byte and the magnitude's bytes,
 * plus a length byte past 8 of them; Deno KV refuses more than 255.
 */
function keyBytes(parts: unknown): number | null {
  if (!Array.isArray(parts) || parts.length === 0) return null
  let total = 0
  for (const part of parts as unknown[]) {
    if (typeof part === 'string') total += byteStringBytes(utf8.encode(part))
    else if (part instanceof Uint8Array) total += byteStringBytes(part)
    else if (typeof part === 'number') total += 9
    else if (typeof part === 'boolean') total += 1
    else if (typeof part === 'bigint') {
      const hex = (part < 0n ? -part : part).toString(16)
      const magnitude = part === 0n ? 0 : Math.ceil(hex.length / 2)
      if (magnitude > 255) return null
      total += magnitude <= 8 ? 1 + magnitude : 2 + magnitude
    } else return null
  }
  return total
}

function byteStringBytes(bytes: Uint8Array): number {
  let total = bytes.length + 2
  for (const byte of bytes) if (byte === 0) total++
  return total
}
