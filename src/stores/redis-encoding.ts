/** @module @internal Session values and records as Redis hash fields, and back (layout: redis-scripts.ts). */

import type { RecordPatch, SessionData, SessionMeta, SessionRecord, SessionTimes } from '../store.ts'
import { unexpected } from './redis-errors.ts'
import {
  CREATED_AT,
  DATA,
  ENCODING,
  EXPIRES_AT,
  FLASH,
  HANDLE,
  LAST_SEEN_AT,
  LEGACY_FLASH,
  MARKED,
  META,
  USER,
} from './redis-scripts.ts'
import { storedUser } from './shared.ts'

/** Encodes one value: `j` + its JSON (see the layout note in redis-scripts.ts). */
export function encodeValue(value: unknown): string {
  const json = JSON.stringify(value)
  if (json === undefined) throw new TypeError('a session value must be JSON data')
  return ENCODING + json
}

/** The value `encodeValue` made, or undefined when `stored` is not one. */
export function decodeValue(stored: unknown): unknown {
  if (typeof stored !== 'string' || !stored.startsWith(ENCODING)) return undefined
  try {
    return JSON.parse(stored.slice(ENCODING.length))
  } catch {
    return undefined
  }
}

/**
 * The record in an HGETALL reply, or null when there is none, or when the hash is not a whole record this store
 * wrote (a value it cannot decode, missing times): such a hash cannot be trusted, and the sessions layer then
 * starts a fresh session. A reply of the wrong shape is the client's failure, and throws. The data object has a
 * null prototype, so every string key (`__proto__` included) is a plain own key.
 */
export function decodeRecord(reply: unknown): SessionRecord | null {
  const data: SessionData = Object.create(null)
  const marked = new Set<string>()
  const metadata = new Map<string, unknown>()
  for (const [field, stored] of hashEntries(reply)) {
    if (field.startsWith(FLASH)) {
      marked.add(field.slice(FLASH.length))
      continue
    }
    const isData = field.startsWith(DATA)
    if (!isData && !field.startsWith(META)) continue
    const value = decodeValue(stored)
    if (value === undefined) return null
    if (isData) data[field.slice(DATA.length)] = value
    else metadata.set(field, value)
  }
  const createdAt = metadata.get(CREATED_AT)
  const lastSeenAt = metadata.get(LAST_SEEN_AT)
  const expiresAt = metadata.get(EXPIRES_AT)
  if (!isTime(createdAt) || !isTime(lastSeenAt) || !isTime(expiresAt)) return null
  const legacy = metadata.get(LEGACY_FLASH)
  if (legacy !== undefined) {
    if (!Array.isArray(legacy) || !legacy.every((key) => typeof key === 'string')) return null
    for (const key of legacy) marked.add(key)
  }
  // A marker counts only beside its value (a patch clears both together; this is a guard, not a path).
  const flash = [...marked].filter((key) => Object.hasOwn(data, key))
  const meta: SessionMeta = { createdAt, lastSeenAt, expiresAt }
  if (flash.length > 0) meta.flash = flash
  // Absent in records written before sessions per user, and in anonymous ones.
  const handle = metadata.get(HANDLE)
  if (handle !== undefined) {
    if (typeof handle !== 'string') return null
    meta.handle = handle
  }
  const user = metadata.get(USER)
  if (user !== undefined) {
    const checked = storedUser(user)
    if (checked === null) return null
    meta.user = checked
  }
  return { data, meta }
}

function hashEntries(reply: unknown): [string, unknown][] {
  if (reply === null) return []
  if (Array.isArray(reply)) {
    if (reply.length % 2 !== 0) throw unexpected('HGETALL', reply)
    const entries: [string, unknown][] = []
    for (let i = 0; i < reply.length; i += 2) {
      const field = reply[i]
      if (typeof field !== 'string') throw unexpected('HGETALL', reply)
      entries.push([field, reply[i + 1]])
    }
    return entries
  }
  if (typeof reply === 'object') return Object.entries(reply)
  throw unexpected('HGETALL', reply)
}

/** A whole record's fields: data, a marker per flash key, times, handle and user. */
export function recordFields({ data, meta }: SessionRecord): string[] {
  const fields: string[] = []
  for (const key of Object.keys(data)) fields.push(DATA + key, encodeValue(data[key]))
  for (const key of meta.flash ?? []) if (Object.hasOwn(data, key)) fields.push(FLASH + key, MARKED)
  fields.push(...timeFields(meta))
  if (meta.handle !== undefined) fields.push(HANDLE, encodeValue(meta.handle))
  if (meta.user) {
    const { id, key, agent, label } = meta.user
    fields.push(USER, encodeValue({ id, key, agent, label }))
  }
  return fields
}

/** A patch's fields: `pairs` to HSET (data, a marker per flash key, times), `deleted` to HDEL. */
export function patchFields(patch: RecordPatch): { pairs: string[]; deleted: string[] } {
  const pairs: string[] = []
  const deleted: string[] = []
  const flash = new Set(patch.flash)
  for (const field of Object.keys(patch.set)) {
    pairs.push(DATA + field, encodeValue(patch.set[field]))
    if (flash.has(field)) pairs.push(FLASH + field, MARKED)
    else deleted.push(FLASH + field)
  }
  for (const field of patch.delete) deleted.push(DATA + field, FLASH + field)
  pairs.push(...timeFields(patch.meta))
  return { pairs, deleted }
}

export function timeFields(times: SessionTimes): string[] {
  return [
    CREATED_AT,
    encodeValue(times.createdAt),
    LAST_SEEN_AT,
    encodeValue(times.lastSeenAt),
    EXPIRES_AT,
    encodeValue(times.expiresAt),
  ]
}

function isTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value)
}
