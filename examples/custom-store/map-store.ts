import { applyPatch, type ServerStore, type SessionRecord } from 'edge-session'

/** Sessions in a Map, each with its deadline on this process's clock: a whole store for one process. */
export function mapStore(): ServerStore {
  const records = new Map<string, { record: SessionRecord; until: number }>()
  const live = (key: string) => {
    const entry = records.get(key)
    if (entry && entry.until <= Date.now()) records.delete(key)
    return records.get(key)
  }
  return {
    name: 'map',
    get: (key) => live(key)?.record ?? null,
    set(key, record, ttl, _ctx, replaces) {
      if (replaces !== undefined) {
        // Nothing is written when the record being replaced is gone (a concurrent destroy), unless this very
        // write already landed and is being retried.
        if (!live(replaces)) return live(key) !== undefined
        records.delete(replaces)
      }
      records.set(key, { record: structuredClone(record), until: Date.now() + ttl })
      return true
    },
    patch(key, patch, ttl) {
      const entry = live(key)
      if (!entry) return false // never recreate a destroyed or expired record
      records.set(key, { record: applyPatch(entry.record, patch), until: Date.now() + ttl })
      return true
    },
    delete(key) {
      records.delete(key)
    },
  }
}
