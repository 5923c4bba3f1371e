/** @module @internal Helpers the stores share: applying a patch to a record, and the one way to build their errors. */

import { SessionError } from '../errors.ts'
import type { RecordPatch, SessionData, SessionMeta, SessionRecord } from '../store.ts'

/**
 * `record` with `patch` applied, as a new record (the old one is not changed). Data objects have a null
 * prototype, so every string key (`__proto__` included) is a plain own key. A changed key is a flash after the
 * patch exactly when the patch lists it in `flash`; other keys keep the markers the record had.
 */
export function applyPatch(record: SessionRecord, patch: RecordPatch): SessionRecord {
  const data: SessionData = Object.create(null)
  for (const key of Object.keys(record.data)) data[key] = record.data[key]
  for (const key of patch.delete) delete data[key]
  for (const key of Object.keys(patch.set)) data[key] = patch.set[key]
  // The record's handle and user stay; its times are the patch's; its flash markers merge.
  const { flash: _, ...kept } = record.meta
  const meta: SessionMeta = { ...kept, ...patch.meta }
  const flash = mergeFlash(record.meta.flash, patch)
  if (flash.length > 0) meta.flash = flash
  return { data, meta }
}

/** The flash markers after `patch`: the record's, less every key the patch names, plus the patch's own. */
export function mergeFlash(current: readonly string[] | undefined, patch: RecordPatch): string[] {
  const named = new Set(patch.delete)
  for (const key of Object.keys(patch.set)) named.add(key)
  const flash = (current ?? []).filter((key) => !named.has(key))
  for (const key of patch.flash) if (!flash.includes(key)) flash.push(key)
  return flash
}

/** `ERR_CONFIG` with the store's name first, as every store reports a bad option: `memoryStore(): ...`. */
export function storeConfigError(store: string, message: string): SessionError {
  return new SessionError('ERR_CONFIG', `${store}(): ${message}`)
}
