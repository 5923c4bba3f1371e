/** @module memoryStore(): sessions in this process's memory, for one instance, development and tests. */

import {
  copyData,
  type RecordPatch,
  type ServerStore,
  type SessionRecord,
  type SessionTimes,
} from '../store.ts'
import { applyPatch, storeConfigError } from './shared.ts'

export interface MemoryStoreOptions {
  /**
   * Most sessions kept at once. Past it, the sessions nearest their deadline are evicted first, so a flood of
   * new sessions cannot exhaust memory. Default 10 000.
   */
  maxSessions?: number
}

/** The memory store: a server store that always counts, and tells how many records it holds. */
export interface MemoryStore extends ServerStore {
  /** Records held now, expired ones not yet swept included. */
  readonly size: number
  count(): number
}

interface Entry {
  record: SessionRecord
  /** Store-clock deadline (`Date.now()` + the TTL it was given): when this process may forget the record. */
  deadline: number
}

/**
 * Keeps sessions in a Map in this process, for one server, development and tests: records vanish with the
 * process and are not shared between instances. Expired records are swept on writes and touches, with no timer;
 * past `maxSessions` the nearest deadlines are evicted, never the record being written. Every call answers at
 * once, with no promise.
 *
 * @param options `maxSessions`, the bound on records kept.
 * @example
 * ```ts
 * const sessions = createSessions({ store: memoryStore({ maxSessions: 50_000 }), secrets })
 * ```
 * @see README.md, "memoryStore", for what it keeps; {@link ServerStore} for the contract it implements.
 */
export function memoryStore(options: MemoryStoreOptions = {}): MemoryStore {
  const maxSessions = options.maxSessions ?? 10_000
  if (!Number.isInteger(maxSessions) || maxSessions < 1) {
    throw storeConfigError(
      'memoryStore',
      `maxSessions must be a positive integer, got ${String(maxSessions)}`,
    )
  }
  const entries = new Map<string, Entry>()
  const deadlines = new DeadlineHeap()
  /** User key → (storage key → handle): each user's index, changed with the records it names. */
  const users = new Map<string, Map<string, string>>()

  const unindex = (key: string, record: SessionRecord): void => {
    const user = record.meta.user
    if (!user) return
    const index = users.get(user.key)
    if (index?.delete(key) && index.size === 0) users.delete(user.key)
  }

  const index = (key: string, record: SessionRecord): void => {
    const user = record.meta.user
    if (!user || !record.meta.handle) return
    const entries = users.get(user.key) ?? new Map<string, string>()
    users.set(user.key, entries)
    entries.set(key, record.meta.handle)
  }

  /** Removes a record and its index entry. */
  const drop = (key: string): void => {
    const entry = entries.get(key)
    if (!entry) return
    entries.delete(key)
    unindex(key, entry.record)
  }

  // Each call reads the clock once and passes the time on: Date.now() is a costly call on some machines.
  const live = (key: string, now: number): Entry | undefined => {
    const entry = entries.get(key)
    if (entry && entry.deadline <= now) {
      drop(key)
      return undefined
    }
    return entry
  }

  const put = (key: string, record: SessionRecord, ttl: number, now: number): void => {
    const deadline = now + ttl
    const entry = entries.get(key)
    index(key, record)
    if (!entry) {
      entries.set(key, { record, deadline })
      deadlines.push(deadline, key)
      return
    }
    if (entry.record.meta.user?.key !== record.meta.user?.key) unindex(key, entry.record)
    entry.record = record
    // A later deadline is re-filed lazily, when the sweep meets the record's older heap item: rewrites and
    // touches do not grow the heap. An earlier deadline needs an item of its own.
    if (deadline < entry.deadline) deadlines.push(deadline, key)
    entry.deadline = deadline
  }

  // Drops expired records, then the nearest deadlines while over the bound, never the record `keep` being
  // written now. Every record has a heap item no later than its deadline: an item later than its record's (or
  // whose record is gone) is stale and dropped; an earlier one belongs to a record since extended, and is re-filed.
  const sweep = (now: number, keep?: string): void => {
    let kept: HeapItem | undefined
    for (;;) {
      const top = deadlines.peek()
      if (!top) break
      const entry = entries.get(top.key)
      const current = entry !== undefined && entry.deadline === top.deadline
      if (current && top.deadline > now && entries.size <= maxSessions) break
      deadlines.pop()
      if (!entry || entry.deadline < top.deadline) continue
      if (!current) deadlines.push(entry.deadline, top.key)
      else if (top.key === keep && top.deadline > now) kept = top
      else drop(top.key)
    }
    if (kept) deadlines.push(kept.deadline, kept.key)
    if (deadlines.size > 2 * entries.size + 1024) deadlines.rebuild(entries)
  }

  const read = (key: string): SessionRecord | null => {
    const entry = live(key, Date.now())
    return entry ? answered(entry.record) : null
  }

  const store: MemoryStore = {
    kind: 'server',
    name: 'memory',
    get size() {
      return entries.size
    },
    get: read,
    set(key, record, ttl, _ctx, replaces) {
      const now = Date.now()
      if (replaces !== undefined) {
        if (!live(replaces, now)) return false
        drop(replaces)
      }
      put(key, { data: copyData(record.data), meta: record.meta }, ttl, now)
      sweep(now, key)
      return true
    },
    patch(key, patch: RecordPatch, ttl, ctx) {
      const now = Date.now()
      const entry = live(key, now)
      if (!entry) return false
      const record = applyPatch(entry.record, patch)
      put(key, record, ttl, now)
      sweep(now, key)
      return ctx.returnRecord ? answered(record) : true
    },
    touch(key, times: SessionTimes, ttl, ctx) {
      const now = Date.now()
      const entry = live(key, now)
      if (!entry) return false
      const record = { data: entry.record.data, meta: { ...entry.record.meta, ...times } }
      put(key, record, ttl, now)
      sweep(now, key)
      return ctx.returnRecord ? answered(record) : true
    },
    delete(key) {
      drop(key)
    },
    count() {
      sweep(Date.now())
      return entries.size
    },
    userEntries(user) {
      const now = Date.now()
      const found: Array<{ key: string; handle: string }> = []
      for (const [key, handle] of users.get(user) ?? []) if (live(key, now)) found.push({ key, handle })
      return found
    },
    getMany(keys) {
      return keys.map(read)
    },
    revokeUser(user, keys) {
      const index = users.get(user)
      let revoked = 0
      for (const key of keys) {
        if (!index?.has(key)) continue
        if (live(key, Date.now())) revoked++
        drop(key)
      }
      return revoked
    },
    countUsers() {
      const now = Date.now()
      let count = 0
      for (const index of [...users.values()]) {
        for (const key of [...index.keys()]) {
          if (live(key, now)) {
            count++
            break
          }
        }
      }
      return count
    },
  }
  return store
}

/**
 * A stored record as a caller gets it: a copy of the data, so the caller cannot change the stored record through
 * it. (Freezing the stored record instead cost more than the copy: V8 changes the shape of a frozen object.)
 */
function answered(record: SessionRecord): SessionRecord {
  return { data: copyData(record.data), meta: record.meta }
}

interface HeapItem {
  deadline: number
  key: string
}

/** A binary min-heap of (deadline, key), with stale entries skipped lazily by the caller. */
class DeadlineHeap {
  #items: HeapItem[] = []

  get size(): number {
    return this.#items.length
  }

  peek(): HeapItem | undefined {
    return this.#items[0]
  }

  push(deadline: number, key: string): void {
    const items = this.#items
    const item = { deadline, key }
    let i = items.length
    items.push(item)
    while (i > 0) {
      const p = (i - 1) >> 1
      const parent = items[p] as HeapItem
      if (parent.deadline <= deadline) break
      items[i] = parent
      i = p
    }
    items[i] = item
  }

  pop(): void {
    const items = this.#items
    const last = items.pop()
    if (!last || items.length === 0) return
    const n = items.length
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= n) break
      const right = left + 1
      const c =
        right < n && (items[right] as HeapItem).deadline < (items[left] as HeapItem).deadline ? right : left
      const child = items[c] as HeapItem
      if (child.deadline >= last.deadline) break
      items[i] = child
      i = c
    }
    items[i] = last
  }

  /** Rebuilds from the live entries, dropping stale ones, when rewrites have piled them up. */
  rebuild(entries: Map<string, Entry>): void {
    this.#items = []
    for (const [key, entry] of entries) this.push(entry.deadline, key)
  }
}
