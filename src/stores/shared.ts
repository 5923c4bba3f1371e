/** @module @internal Helpers the stores share: patches, stored-record checks, config errors, sleep, UTF-8 sizes. */

import { SessionError } from '../errors.ts'
import {
  copyData,
  type RecordPatch,
  type SessionData,
  type SessionMeta,
  type SessionRecord,
  type SessionTimes,
  type SessionUser,
  type UserEntry,
} from '../store.ts'

/**
 * `record` with `patch` applied, as a new record (the old one is not changed). Data objects have a null
 * prototype, so every string key (`__proto__` included) is a plain own key. A changed key is a flash after the
 * patch exactly when the patch lists it in `flash`; other keys keep the markers the record had.
 */
export function applyPatch(record: SessionRecord, patch: RecordPatch): SessionRecord {
  const data = copyData(record.data)
  for (const key of patch.delete) delete data[key]
  for (const key of Object.keys(patch.set)) data[key] = patch.set[key]
  // Its times are the patch's; its handle and user stay; its flash markers merge.
  const meta = metaWithTimes(patch.meta, record.meta)
  const flash = mergeFlash(record.meta.flash, patch)
  if (flash.length > 0) meta.flash = flash
  return { data, meta }
}

/**
 * New metadata: `times`, with the handle and user of `from` and no flash markers. One literal shape: spreads and
 * rests cost a tenth of a memory-store write.
 */
export function metaWithTimes(times: SessionTimes, from: SessionMeta): SessionMeta {
  const meta: SessionMeta = {
    createdAt: times.createdAt,
    lastSeenAt: times.lastSeenAt,
    expiresAt: times.expiresAt,
  }
  if (from.handle !== undefined) meta.handle = from.handle
  if (from.user !== undefined) meta.user = from.user
  return meta
}

/** The flash markers after `patch`: the record's, less every key the patch names, plus the patch's own. */
export function mergeFlash(current: readonly string[] | undefined, patch: RecordPatch): string[] {
  // The common case, no flash anywhere, allocates nothing more.
  if ((current === undefined || current.length === 0) && patch.flash.length === 0) return NO_FLASH
  const named = new Set(patch.delete)
  for (const key of Object.keys(patch.set)) named.add(key)
  const flash = (current ?? []).filter((key) => !named.has(key))
  for (const key of patch.flash) if (!flash.includes(key)) flash.push(key)
  return flash
}

/**
 * The user-index entry a record's metadata calls for: its user's key and its handle, when it is bound to a user.
 * Undefined for an anonymous record, and for one written before handles existed (it has no user either).
 */
export function userEntryOf(meta: SessionMeta): UserEntry | undefined {
  return meta.user && meta.handle !== undefined ? { user: meta.user.key, handle: meta.handle } : undefined
}

const NO_FLASH: string[] = []

/** `ERR_CONFIG` with the store's name first, as every store reports a bad option: `memoryStore(): ...`. */
export function storeConfigError(store: string, message: string): SessionError {
  return new SessionError('ERR_CONFIG', `${store}(): ${message}`)
}

/**
 * A record read back from a store, checked: `{ data, meta }` with `data` a plain object and `meta` as
 * {@link storedMeta} accepts it. Null for anything else (a foreign or damaged value): the caller decides whether
 * that reads as missing or fails.
 */
export function storedRecord(value: unknown): SessionRecord | null {
  if (!isPlainObject(value)) return null
  const data = storedData(value.data)
  return data === null ? null : withMeta(data, value.meta)
}

/** {@link storedRecord} of JSON text; null when the text is not JSON either. */
export function parseStoredRecord(text: string): SessionRecord | null {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return null
  }
  return storedRecord(value)
}

/**
 * `data` and the metadata `meta` holds, as one record; null when `meta` is not a record's. Flash markers of keys
 * `data` does not hold are dropped: they mark nothing.
 */
export function withMeta(data: SessionData, meta: unknown): SessionRecord | null {
  const checked = storedMeta(meta)
  if (checked === null) return null
  if (checked.flash) {
    const flash = checked.flash.filter((key) => Object.hasOwn(data, key))
    if (flash.length > 0) checked.flash = flash
    else delete checked.flash
  }
  return { data, meta: checked }
}

/**
 * A record's metadata read back: its three times as finite numbers (on the sessions' clock, never compared here)
 * and, when present, a flash list of strings, a handle and a user. A fresh object holding only those fields;
 * null when damaged.
 */
export function storedMeta(value: unknown): SessionMeta | null {
  const times = storedTimes(value)
  if (times === null) return null
  const meta: SessionMeta = times
  const { flash, handle, user } = value as { flash?: unknown; handle?: unknown; user?: unknown }
  if (flash !== undefined) {
    if (!Array.isArray(flash) || !flash.every((key) => typeof key === 'string')) return null
    if (flash.length > 0) meta.flash = [...new Set(flash as string[])]
  }
  if (handle !== undefined) {
    if (typeof handle !== 'string') return null
    meta.handle = handle
  }
  if (user !== undefined) {
    const checked = storedUser(user)
    if (checked === null) return null
    meta.user = checked
  }
  return meta
}

/** A record's user read back: id and key strings, agent and label strings or null; null when damaged. */
export function storedUser(value: unknown): SessionUser | null {
  if (!isPlainObject(value)) return null
  const { id, key, agent, label } = value
  const optional = (v: unknown): v is string | null => v === null || typeof v === 'string'
  if (typeof id !== 'string' || typeof key !== 'string' || !optional(agent) || !optional(label)) return null
  return { id, key, agent, label }
}

/** The times in `value` (`createdAt`, `lastSeenAt`, `expiresAt`, finite numbers), or null. */
export function storedTimes(value: unknown): SessionTimes | null {
  if (!isPlainObject(value)) return null
  const { createdAt, lastSeenAt, expiresAt } = value
  if (!isFiniteNumber(createdAt) || !isFiniteNumber(lastSeenAt) || !isFiniteNumber(expiresAt)) return null
  return { createdAt, lastSeenAt, expiresAt }
}

/**
 * Session data read back: a null-prototype copy of a plain object, so every key (`__proto__` included, as
 * `JSON.parse` keeps it) stays a plain own key. Null for an array or anything that is not an object.
 */
export function storedData(value: unknown): SessionData | null {
  if (!isPlainObject(value)) return null
  const data: SessionData = Object.create(null)
  // Assignment into a null-prototype object defines an own property, whatever the key.
  for (const key of Object.keys(value)) data[key] = value[key]
  return data
}

/**
 * Resolves after `ms`, or rejects with `signal.reason` as soon as `signal` aborts: a retry loop waiting out a
 * conflict or a rate limit stops when the sessions layer gives up on the call (`storeTimeout`).
 */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason)
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

/** One encoder for every store: building one per call allocates for nothing. */
export const utf8 = new TextEncoder()

/** The UTF-8 size of `text` in bytes (a lone surrogate counts 3, as the U+FFFD that encoders write for it). */
export function utf8Length(text: string): number {
  return utf8.encode(text).length
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value)
}
