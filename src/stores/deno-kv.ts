/** @module denoKvStore(): sessions in Deno KV (a local SQLite file, or Deno Deploy's shared KV), one entry per session. */

import { SessionError } from '../errors.ts'
import type {
  ServerStore,
  SessionData,
  SessionMeta,
  SessionRecord,
  SessionTimes,
  StoreContext,
  WriteAnswer,
} from '../store.ts'
import { applyPatch, sleep, storeConfigError, storedData, userEntryOf, utf8, withMeta } from './shared.ts'

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
  /** At most 10 keys a call (Deno KV's limit). */
  getMany(keys: DenoKvKey[]): Promise<{ value: unknown; versionstamp: string | null }[]>
  set(key: DenoKvKey, value: unknown, options?: { expireIn?: number }): Promise<unknown>
  delete(key: DenoKvKey): Promise<void>
  list(
    selector: { prefix: DenoKvKey },
    options?: { batchSize?: number },
  ): AsyncIterable<{ key: readonly unknown[]; value: unknown }>
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

/** What a session's entry in its user's index holds, under `[...prefix, 'u', user key, hashed id]`. */
export interface DenoKvUserEntryValue {
  /** The session's handle: what a device list shows. */
  handle: string
  /** The session's own `ttlEnd`: the entry is written, with the same `expireIn`, in each write of the session. */
  ttlEnd: number
}

/** Deno KV refuses values over 64 KiB (as V8 serializes them). */
const MAX_VALUE_BYTES = 65_536
/** Room kept for the value's fixed part (field names, times, the serialization's own bytes): about 110 bytes. */
const VALUE_OVERHEAD_BYTES = 1024
/** Deno KV keys are at most 2048 bytes, encoded as FoundationDB tuples. */
const MAX_KEY_BYTES = 2048
/** A hashed id or user id (43 base64url characters) as a tuple string, with its two tag bytes. */
const HASH_PART_BYTES = 45
/** The key part the user index lives under: `[...prefix, 'u', user key, hashed id]`. */
const USERS = 'u'
/** The longest key after the prefix: a user-index entry, `'u'` (3 bytes encoded) and two hashes. */
const MAX_SUFFIX_BYTES = 3 + 2 * HASH_PART_BYTES
/** The largest prefix, encoded, that leaves room for the longest key after it. */
const MAX_PREFIX_BYTES = MAX_KEY_BYTES - MAX_SUFFIX_BYTES
/** Deno KV reads at most 10 keys in one `getMany`. */
const GET_MANY_KEYS = 10
/** Sessions revoked per atomic operation: two deletes each, well within Deno KV's 1000 mutations. */
const REVOKE_BATCH = 100
/** Entries per round trip of a listing (Deno KV's default is 100 on Deno Deploy; it allows up to 1000). */
const LIST_BATCH = 500

/**
 * A session store in Deno KV (a SQLite file on one machine, or Deno Deploy): one entry per session. Patches,
 * touches and regenerates are atomic operations checked against versionstamps and retried on conflict, so
 * concurrent changes merge and nothing recreates a destroyed session; a user's index changes in the same
 * operations. Run Deno with `--unstable-kv`.
 *
 * @param options `kv`, an open `Deno.Kv`; `prefix`, default `['sess']`; `maxAttempts` on conflicts, default 20.
 * @throws SessionError `ERR_CONFIG` for a `kv` that is not Deno KV or a bad prefix; `ERR_TOO_LARGE` past 64 KiB.
 * @example
 * ```ts
 * const sessions = createSessions({ store: denoKvStore({ kv: await Deno.openKv() }), secrets })
 * ```
 * @see docs/deno-kv.md for what is stored, concurrency, sessions per user and Deno KV's limits.
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
  /** Every user's index lies under `[...prefix, 'u']`; one entry per session, `[...prefix, 'u', user, hashed id]`. */
  const users: DenoKvKey = [...prefix, USERS]
  const entryKeyOf = (user: string, key: string): DenoKvKey => [...users, user, key]

  /** The entry under `key` while its TTL lasts, decoded, with the versionstamp a write checks against. */
  const read = async (key: DenoKvKey) => {
    const entry = await kv.get(key)
    if (entry.versionstamp === null) return null
    const stored = decode(entry.value, key)
    if (stored.ttlEnd <= Date.now()) return null
    return { ...stored, check: { key, versionstamp: entry.versionstamp } }
  }

  /** The values under `keys`, in order: 10 a call (Deno KV's limit), the calls in parallel. */
  const readMany = async (keys: DenoKvKey[]): Promise<unknown[]> => {
    const calls: Promise<{ value: unknown }[]>[] = []
    for (let i = 0; i < keys.length; i += GET_MANY_KEYS)
      calls.push(kv.getMany(keys.slice(i, i + GET_MANY_KEYS)))
    return (await Promise.all(calls)).flat().map((entry) => entry.value)
  }

  /**
   * Adds to `op` the session's entry and, when the session is bound to a user, its entry in the user's index:
   * both with one `expireIn` and one `ttlEnd`, so the index entry lives exactly as long as the session it names.
   */
  const put = (op: DenoKvAtomicOperation, key: string, value: DenoKvSessionValue, ttl: number) => {
    const options = { expireIn: expireIn(ttl) }
    op.set(keyOf(key), value, options)
    const entry = userEntryOf(value.meta)
    if (entry) {
      const indexed: DenoKvUserEntryValue = { handle: entry.handle, ttlEnd: value.ttlEnd }
      op.set(entryKeyOf(entry.user, key), indexed, options)
    }
    return op
  }

  /**
   * Optimistic concurrency: `attempt` reads, then commits an operation checked against what it read. A failed
   * check means another writer came first: try again on the fresh entry, after a short random pause so that
   * writers that collided do not collide again in step. The pause ends early when the call is abandoned.
   */
  const retrying = async <T extends WriteAnswer>(
    signal: AbortSignal,
    attempt: () => Promise<T | undefined>,
  ): Promise<T> => {
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

  /**
   * Rewrites an existing entry and its index entry, checked against the version read and retried on conflict;
   * false when missing. With `returnRecord`, answers the value committed, decoded as `get` decodes it: the
   * check made it the entry as stored after the write.
   */
  const rewrite = (
    key: string,
    ttl: number,
    { signal, returnRecord }: StoreContext,
    next: (current: StoredEntry) => DenoKvSessionValue,
  ): Promise<WriteAnswer> => {
    const full = keyOf(key)
    return retrying<WriteAnswer>(signal, async () => {
      const entry = await read(full)
      if (!entry) return false
      const value = next(entry)
      signal.throwIfAborted()
      const result = await committed(put(kv.atomic().check(entry.check), key, value, ttl))
      if (!result.ok) return undefined
      return returnRecord ? (parseData(value.data, value.meta) ?? true) : true
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
        if (userEntryOf(record.meta)) await committed(put(kv.atomic(), key, value, ttl))
        else await tooLargeAsSuch(kv.set(keyOf(key), value, { expireIn: expireIn(ttl) }))
        return true
      }
      const old = keyOf(replaces)
      return retrying(ctx.signal, async () => {
        // Nothing is written unless the old record still exists: a concurrent destroy must not be undone.
        const entry = await read(old)
        // Gone: destroyed meanwhile, or moved by an earlier attempt of this very call (the new key is a fresh id
        // that nothing else writes), which has then succeeded.
        if (!entry) return (await read(keyOf(key))) !== null
        const op = kv.atomic().check(entry.check).delete(old)
        // The old record's index entry goes with it: the one its stored metadata names.
        const moved = userEntryOf(entry.record.meta)
        if (moved) op.delete(entryKeyOf(moved.user, replaces))
        const result = await committed(put(op, key, value, ttl))
        return result.ok ? true : undefined
      })
    },

    patch(key, patch, ttl, ctx) {
      return rewrite(key, ttl, ctx, (current) => toValue(applyPatch(current.record, patch), ttl))
    },

    // Deno KV has no TTL-only update: a touch rewrites the entry, data, flash markers, handle and user unchanged,
    // checked like a patch. The data text is kept as read, not parsed and written again.
    touch(key, times: SessionTimes, ttl, ctx) {
      return rewrite(key, ttl, ctx, (current) => ({
        data: current.text,
        meta: { ...current.record.meta, ...times },
        ttlEnd: Date.now() + ttl,
      }))
    },

    async delete(key, ctx) {
      // The sessions layer names the record's index entry: both go in one operation, with no read first.
      if (!ctx.user) return kv.delete(keyOf(key))
      await committed(kv.atomic().delete(keyOf(key)).delete(entryKeyOf(ctx.user.user, key)))
    },

    async count() {
      const now = Date.now()
      let live = 0
      // Index entries lie under the prefix too; they are no session values, so they are read and skipped.
      for await (const entry of kv.list({ prefix }, { batchSize: LIST_BATCH })) {
        if (isSessionValue(entry.value) && entry.value.ttlEnd > now) live++
      }
      return live
    },

    async userEntries(user) {
      const now = Date.now()
      const found: Array<{ key: string; handle: string }> = []
      const index = [...users, user]
      for await (const { key, value } of kv.list({ prefix: index }, { batchSize: LIST_BATCH })) {
        // A damaged entry (another value, a longer key) is skipped, never an error.
        const id = key[index.length]
        if (key.length !== index.length + 1 || typeof id !== 'string' || !isUserEntryValue(value)) continue
        if (value.ttlEnd > now) found.push({ key: id, handle: value.handle })
      }
      return found
    },

    async getMany(keys) {
      const now = Date.now()
      const values = await readMany(keys.map(keyOf))
      // For a listing: a damaged or foreign value reads as missing here (the session's own load reports it).
      return values.map((value) =>
        isSessionValue(value) && value.ttlEnd > now ? parseData(value.data, value.meta) : null,
      )
    },

    async revokeUser(user, keys) {
      const unique = [...new Set(keys)]
      const values = await readMany(unique.map(keyOf))
      const now = Date.now()
      let revoked = 0
      const doomed: DenoKvKey[][] = []
      unique.forEach((key, i) => {
        const value = values[i]
        const record = isSessionValue(value) ? parseData(value.data, value.meta) : null
        // The entry in this user's index goes in any case; the record only when it is this user's session
        // (another user's session, or a value that is no session record, is left alone).
        const gone = [entryKeyOf(user, key)]
        if (record?.meta.user?.key === user) {
          gone.push(keyOf(key))
          if ((value as DenoKvSessionValue).ttlEnd > now) revoked++
        }
        doomed.push(gone)
      })
      // Each session goes with its entry in one operation; batches of them, in parallel.
      const commits: Promise<unknown>[] = []
      for (let i = 0; i < doomed.length; i += REVOKE_BATCH) {
        const op = kv.atomic()
        for (const gone of doomed.slice(i, i + REVOKE_BATCH)) for (const key of gone) op.delete(key)
        commits.push(committed(op))
      }
      await Promise.all(commits)
      return revoked
    },

    async countUsers() {
      const now = Date.now()
      let count = 0
      let last: unknown
      // Listed in key order, so a user's entries come together: a user counts once, at its first live entry.
      for await (const { key, value } of kv.list({ prefix: users }, { batchSize: LIST_BATCH })) {
        const user = key[users.length]
        if (user === last || key.length !== users.length + 2 || typeof user !== 'string') continue
        if (isUserEntryValue(value) && value.ttlEnd > now) {
          count++
          last = user
        }
      }
      return count
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

function isUserEntryValue(value: unknown): value is DenoKvUserEntryValue {
  if (typeof value !== 'object' || value === null) return false
  const { handle, ttlEnd } = value as Partial<DenoKvUserEntryValue>
  return typeof handle === 'string' && typeof ttlEnd === 'number' && !Number.isNaN(ttlEnd)
}

function isDenoKv(value: unknown): value is DenoKv {
  if (typeof value !== 'object' || value === null) return false
  const kv = value as Record<string, unknown>
  return ['get', 'getMany', 'set', 'delete', 'list', 'atomic'].every(
    (method) => typeof kv[method] === 'function',
  )
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
