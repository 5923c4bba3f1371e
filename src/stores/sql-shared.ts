/** @module @internal What the SQL stores share: table names, prune limits, and the row a session becomes. */

import { SessionError } from '../errors.ts'
import type { SessionMeta, SessionRecord } from '../store.ts'
import { storeConfigError, storedData, storedMeta } from './shared.ts'

/** A table name: a plain identifier, checked at creation so it can be written into SQL as it is. */
const TABLE = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

/** `table` (default `'sessions'`), or `ERR_CONFIG` naming the store: no schema prefix, no quoting needed. */
export function checkTable(store: string, table: string | undefined): string {
  const name = table ?? 'sessions'
  if (typeof name !== 'string' || !TABLE.test(name)) {
    throw storeConfigError(
      store,
      `table must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63 characters), got ${JSON.stringify(name)}`,
    )
  }
  return name
}

/** `prune({ limit })`: rows deleted per call, default 1000; a positive integer up to 100 000. */
export function checkPruneLimit(store: string, limit: number | undefined): number {
  const value = limit ?? 1000
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 100_000) {
    throw new SessionError(
      'ERR_CONFIG',
      `${store}(): prune limit must be an integer from 1 to 100000, got ${String(value)}`,
    )
  }
  return value
}

/** The metadata a row keeps in its `meta` column: the times, the handle and the user (flash markers apart). */
export function metaColumn(meta: SessionMeta): string {
  const { flash: _, ...rest } = meta
  return JSON.stringify(rest)
}

/**
 * A row read back as a record: `data` and `meta` as JSON text or parsed values, and the flash markers as an
 * object whose keys are the flashed data keys. Null when the row is not a session record.
 */
export function rowRecord(data: unknown, meta: unknown, flash: unknown): SessionRecord | null {
  const parse = (value: unknown): unknown => {
    if (typeof value !== 'string') return value
    try {
      return JSON.parse(value)
    } catch {
      return undefined
    }
  }
  const checkedData = storedData(parse(data))
  const checkedMeta = storedMeta(parse(meta))
  if (!checkedData || !checkedMeta) return null
  const markers = parse(flash)
  if (markers && typeof markers === 'object' && !Array.isArray(markers)) {
    const keys = Object.keys(markers).filter((key) => Object.hasOwn(checkedData, key))
    if (keys.length > 0) checkedMeta.flash = keys
  }
  return { data: checkedData, meta: checkedMeta }
}
