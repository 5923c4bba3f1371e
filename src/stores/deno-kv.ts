/** @module denoKvStore(): sessions in Deno KV (a local SQLite file, or Deno Deploy's shared KV), one entry per session. */

import { SessionError } from '../errors.ts'
import type { RecordPatch, ServerStore, SessionData, SessionMeta, SessionRecord } from '../store.ts'

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

/** Deno KV refuses values over 64 KiB (serialized). */
const MAX_VALUE_BYTES = 65_536
/** Room kept for the metadata and the serialization's own bytes around the data text. */
const VALUE_OVERHEAD_BYTES = 1024
/** Deno KV keys are at most 2 KiB; a hashed id (base64url SHA-256) takes 43 bytes of it, plus encoding. */
const MAX_PREFIX_BYTES = 1900

/**
 * A session store in Deno KV: one entry per session under `[...prefix, hashed id]`, for Deno on one machine (a
 * SQLite file shared by the processes that open it) or on Deno Deploy (one KV for every region).
 *
 * - Each write carries the TTL as `expireIn`. Deno KV deletes expired keys lazily (a local database may still
 *   return one for a while), so the entry also holds the TTL's end on this process's clock, and an entry past
 *   it reads as missing, as it would in Redis. Session expiry itself is judged by the sessions layer from the
 *   record's metadata, on its own clock.
 * - Patches and touches are read-check-write: an atomic operation checks the entry's versionstamp, and when
 *   another writer came first the write is retried on the fresh entry (a bounded number of times, with jitter),
 *   so two requests changing different keys of one session both persist, and nothing recreates a destroyed
 *   session. A regenerate writes the new entry and deletes the old one in one atomic operation, checked
 *   against the old entry.
 * - `count()` lists the prefix: it reads every session entry, so it costs one read per live session. Fine for
 *   an admin page, not for every request.
 * - A session's data may take up to about 63 KiB of JSON (Deno KV's 64 KiB value limit); a larger write fails
 *   with `ERR_TOO_LARGE`.
 *
 * Deno KV is an unstable API in the Deno CLI: run with `--unstable-kv` (or `"unstable": ["kv"]` in deno.json).
 *
 * @param options `kv`, an open `Deno.Kv`; `prefix` for the keys, default `['sess']`; `maxAttempts` for writes
 *   that meet concurrent writers, default 20.
 * @returns A store for `createSessions({ store })`.
 * @throws SessionError `ERR_CONFIG` when `kv` is not a Deno KV database, or the prefix is not a non-empty
 *   array of key parts.
 * @example
 * ```ts
 * import { createSessions } from 'edge-session'
 * import { denoKvStore } from 'edge-session/stores/deno-kv'
 *
 * const sessions = createSessions<{ count?: number }>({
 *   store: denoKvStore({ kv: await Deno.openKv(), prefix: ['myapp', 'sess'] }),
 *   secrets: [Deno.env.get('SESSION_SECRET') ?? ''],
 * })
 *
 * Deno.serve(async (request) => {
 *   const session = await sessions.load(request)
 *   session.set('count', (session.get('count') ?? 0) + 1)
 *   return sessions.commit(session, new Response(String(session.get('count'))))
 * })
 * ```
 * @see {@link https://docs.deno.com/deploy/kv/manual/transactions/} for atomic operations and versionstamps.
 * @see {@link https://docs.deno.com/deploy/kv/manual/key_expiration/} for `expireIn` and lazy expiry.
 * @see {@link ServerStore} for the contract it implements.
 */
export function denoKvStore(options: DenoKvStoreOptions): ServerStore {
  const { kv, prefix = ['sess'], maxAttempts = 20 } = options ?? ({} as DenoKvStoreOptions)
  if (!isDenoKv(kv)) {
    throw new SessionError('ERR_CONFIG', 'denoKvStore() needs an open Deno KV database as `kv`')
  }
  if (!isKeyPrefix(prefix)) {
    throw new SessionError(
      'ERR_CONFIG',
      `denoKvStore: \`prefix\` must be a non-empty array of Deno KV key parts of at most ${MAX_PREFIX_BYTES} bytes`,
    )
  }
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new SessionError('ERR_CONFIG', 'denoKvStore: `maxAttempts` must be a positive integer')
  }
  const keyOf = (key: string): DenoKvKey => [...prefix, key]

  /** The entry under `key` while its TTL lasts, with the versionstamp a write checks against. */
  const read = async (key: DenoKvKey) => {
    const entry = await kv.get(key)
    if (entry.versionstamp === null) return null
    const value = parseValue(entry.value, key)
    if (value.ttlEnd <= Date.now()) return null
    return { value, check: { key, versionstamp: entry.versionstamp } }
  }

  /**
   * Optimistic concurrency: `attempt` reads, then commits an operation checked against what it read. A failed
   * check means another writer came first: try again on the fresh entry, after a short random pause so that
   * writers that collided do not collide again in step.
   */
  const retrying = async (
    signal: AbortSignal,
    attempt: () => Promise<boolean | undefined>,
  ): Promise<boolean> => {
    for (let i = 0; i < maxAttempts; i++) {
      signal.throwIfAborted()
      const result = await attempt()
      if (result !== undefined) return result
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(2 ** i, 50)))
    }
    throw new SessionError(
      'ERR_STORE',
      `denoKvStore: a write met concurrent writers ${maxAttempts} times in a row and gave up`,
    )
  }

  /** Rewrites an existing entry, checked against the version read and retried on conflict; false when missing. */
  const rewrite = (
    key: string,
    ttl: number,
    signal: AbortSignal,
    next: (current: DenoKvSessionValue) => DenoKvSessionValue,
  ): Promise<boolean> => {
    const full = keyOf(key)
    return retrying(signal, async () => {
      const entry = await read(full)
      if (!entry) return false
      const result = await kv
        .atomic()
        .check(entry.check)
        .set(full, next(entry.value), { expireIn: expireIn(ttl) })
        .commit()
      return result.ok ? true : undefined
    })
  }

  return {
    kind: 'server',
    name: 'deno-kv',

    async get(key) {
      const entry = await read(keyOf(key))
      return entry ? toRecord(entry.value) : null
    },

    async set(key, record, ttl, ctx, replaces) {
      const value = toValue(record.data, record.meta, ttl)
      if (replaces === undefined) {
        await kv.set(keyOf(key), value, { expireIn: expireIn(ttl) })
        return true
      }
      const old = keyOf(replaces)
      return retrying(ctx.signal, async () => {
        // Nothing is written unless the old record still exists: a concurrent destroy must not be undone.
        const entry = await read(old)
        if (!entry) return false
        const result = await kv
          .atomic()
          .check(entry.check)
          .delete(old)
          .set(keyOf(key), value, { expireIn: expireIn(ttl) })
          .commit()
        return result.ok ? true : undefined
      })
    },

    async patch(key, patch: RecordPatch, ttl, ctx) {
      return rewrite(key, ttl, ctx.signal, (current) => {
        const data = JSON.parse(current.data) as SessionData
        for (const field of patch.delete) delete data[field]
        // Defined, not assigned: a key such as `__proto__` stays a plain data key.
        for (const field of Object.keys(patch.set)) {
          Object.defineProperty(data, field, {
            value: patch.set[field],
            enumerable: true,
            writable: true,
            configurable: true,
          })
        }
        return toValue(data, patch.meta, ttl)
      })
    },

    // Deno KV has no TTL-only update: a touch rewrites the entry, data unchanged, checked like a patch.
    async touch(key, meta: SessionMeta, ttl, ctx) {
      return rewrite(key, ttl, ctx.signal, (current) => ({
        data: current.data,
        meta,
        ttlEnd: Date.now() + ttl,
      }))
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

function toValue(data: SessionData, meta: SessionMeta, ttl: number): DenoKvSessionValue {
  const text = JSON.stringify(data)
  // V8 serializes a string as one byte per character when every character fits in Latin-1, else as two.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the Latin-1 range starts at U+0000.
  const bytes = /[^\u0000-\u00ff]/.test(text) ? text.length * 2 : text.length
  if (bytes > MAX_VALUE_BYTES - VALUE_OVERHEAD_BYTES) {
    throw new SessionError(
      'ERR_TOO_LARGE',
      `denoKvStore: the session data takes ${bytes} bytes; Deno KV keeps values of at most 64 KiB`,
    )
  }
  return { data: text, meta, ttlEnd: Date.now() + ttl }
}

function toRecord(value: DenoKvSessionValue): SessionRecord {
  return { data: JSON.parse(value.data) as SessionData, meta: value.meta }
}

/** Deno KV takes whole milliseconds; never less than one. */
function expireIn(ttl: number): number {
  return Math.max(1, Math.ceil(ttl))
}

function parseValue(value: unknown, key: DenoKvKey): DenoKvSessionValue {
  if (isSessionValue(value)) return value
  // Something else lives under the sessions' prefix: say so rather than overwrite or ignore it.
  throw new Error(`the entry under [${key.map(String).join(', ')}] is not a session record`)
}

function isSessionValue(value: unknown): value is DenoKvSessionValue {
  if (typeof value !== 'object' || value === null) return false
  const candidate = value as Partial<DenoKvSessionValue>
  return (
    typeof candidate.data === 'string' &&
    typeof candidate.ttlEnd === 'number' &&
    typeof candidate.meta === 'object' &&
    candidate.meta !== null
  )
}

function isDenoKv(value: unknown): value is DenoKv {
  if (typeof value !== 'object' || value === null) return false
  const kv = value as Record<string, unknown>
  return ['get', 'set', 'delete', 'list', 'atomic'].every((method) => typeof kv[method] === 'function')
}

function isKeyPrefix(prefix: unknown): prefix is DenoKvKey {
  if (!Array.isArray(prefix) || prefix.length === 0) return false
  let bytes = 0
  for (const part of prefix as unknown[]) {
    if (typeof part === 'string') bytes += new TextEncoder().encode(part).length + 2
    else if (part instanceof Uint8Array) bytes += part.length + 2
    else if (typeof part === 'number' || typeof part === 'bigint' || typeof part === 'boolean') bytes += 9
    else return false
  }
  return bytes <= MAX_PREFIX_BYTES
}
