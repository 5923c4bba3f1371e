/** @module Cloudflare Durable Objects store: one object per session, one per user's index, exact on every call. */

import { DurableObject } from 'cloudflare:workers'
import { SessionError } from '../errors.ts'
import type {
  RecordPatch,
  ServerStore,
  SessionRecord,
  SessionTimes,
  StoreContext,
  WriteAnswer,
} from '../store.ts'
import {
  applyPatch,
  parseStoredRecord,
  storeConfigError,
  storedData,
  storedTimes,
  utf8Length,
} from './shared.ts'

/**
 * The part of a `DurableObjectNamespace` binding this store uses. Structural and loose, so a typed or untyped
 * namespace fits and the other entry points need no `@cloudflare/workers-types`.
 */
export interface SessionObjectNamespace {
  idFromName(name: string): unknown
  get(id: never): unknown
}

export interface DurableObjectStoreOptions<Env = Record<string, SessionObjectNamespace>> {
  /** The namespace bound to `SessionObject`, or a function that picks it from the bindings passed to `load`. */
  namespace: SessionObjectNamespace | ((env: Env) => SessionObjectNamespace | null | undefined)
  /** Added before every object name. Default `'sess:'`. */
  prefix?: string
}

/**
 * SQLite-backed Durable Objects keep a value of at most 2 MB (a row's limit); the record is one value. Counted
 * on the record's JSON text, with a little room for the key.
 */
export const MAX_RECORD_BYTES = 2_000_000

/** How long a regenerated or revoked object remembers it: longer than any `storeTimeout` a write can wait. */
const GONE_MS = 10 * 60_000
/** An index entry's lifetime when no `createSessions` told the store its `absoluteTimeout`: 400 days. */
const DEFAULT_ENTRY_LIFE_MS = 400 * 24 * 3600_000
/** A regenerate forwards to a fresh id; a revocation follows at most this many moves. */
const MAX_FORWARDS = 8

/** What a patch or a touch answers from the object: the record's JSON text when asked for it. */
type ChangeAnswer = 'missing' | 'written' | 'too-large' | { record: string }

/** What a revocation answers: whether it ended a live record, and where a regenerate moved the session. */
interface RevokeAnswer {
  revoked: boolean
  movedTo: string | null
}

/** The RPC methods of {@link SessionObject}, as a stub answers them. */
interface SessionObjectStub {
  read(): Promise<string | null>
  write(record: string, ttl: number): Promise<boolean>
  change(patch: string, ttl: number, answer: boolean): Promise<ChangeAnswer>
  extend(times: SessionTimes, ttl: number, answer: boolean): Promise<ChangeAnswer>
  take(to: string): Promise<boolean>
  remove(): Promise<void>
  revoke(user: string, pending: boolean): Promise<RevokeAnswer>
  addEntry(key: string, handle: string, life: number): Promise<void>
  removeEntries(keys: string[]): Promise<void>
  entries(): Promise<Array<{ key: string; handle: string }>>
}

/**
 * A session store in Cloudflare Durable Objects: each session's record lives in an object of its own (named by
 * the hashed id), each user's index in another (named by the user's hashed id). Objects are single-threaded with
 * transactional storage, so a change merges into the stored record (concurrent changes to different keys all
 * persist), never recreates a destroyed or expired record, and a logout or revocation holds at once, everywhere.
 * The TTL runs on the object's clock; an alarm deletes the object's storage when it ends.
 *
 * Export `SessionObject` from the Worker and bind it (`SESSION_OBJECTS`, a `new_sqlite_classes` migration).
 * `count()` and `countUsers()` are not offered: no object sees every session. A regenerate spans two objects:
 * a failure between them logs the user out. Types need `@cloudflare/workers-types`. See docs/durable-objects.md.
 *
 * @example
 * ```ts
 * const store = durableObjectStore({ namespace: (env: Env) => env.SESSION_OBJECTS })
 * export { SessionObject } from 'edge-session/stores/durable-object'
 * ```
 */
export function durableObjectStore<Env = Record<string, SessionObjectNamespace>>(
  options: DurableObjectStoreOptions<Env>,
): ServerStore {
  const { namespace, prefix = 'sess:' } = options ?? ({} as DurableObjectStoreOptions<Env>)
  if (typeof namespace !== 'function' && !isNamespace(namespace)) {
    throw storeConfigError(
      'durableObjectStore',
      '`namespace` must be a Durable Object namespace binding or a function (env) => binding',
    )
  }
  // Object names are at most 2048 bytes (a Workers limit); a key is 43 characters.
  if (typeof prefix !== 'string' || utf8Length(prefix) > 1024) {
    throw storeConfigError('durableObjectStore', '`prefix` must be a string of at most 1024 bytes')
  }
  /** The longest absolute lifetime a `createSessions` using this store asked for: an index entry's lifetime. */
  let entryLife = 0

  const namespaceFor = (ctx: StoreContext): SessionObjectNamespace => {
    if (typeof namespace !== 'function') return namespace
    if (ctx.env === undefined || ctx.env === null) {
      throw storeConfigError(
        'durableObjectStore',
        '`namespace` takes the binding from the Workers env, but none was passed: call sessions.load(request, env)',
      )
    }
    const bound = namespace(ctx.env as Env)
    if (!isNamespace(bound)) {
      throw storeConfigError(
        'durableObjectStore',
        'the `namespace` function returned no Durable Object namespace; is the binding declared in the ' +
          'Wrangler configuration, and is `env` passed to sessions.load(request, env)?',
      )
    }
    return bound
  }
  const stub = (ns: SessionObjectNamespace, name: string) =>
    ns.get(ns.idFromName(prefix + name) as never) as SessionObjectStub
  // Keys are base64url: they never hold ':', so no session object is named like an index.
  const session = (ns: SessionObjectNamespace, key: string) => stub(ns, key)
  const index = (ns: SessionObjectNamespace, user: string) => stub(ns, `u:${user}`)
  const life = () => (entryLife > 0 ? entryLife : DEFAULT_ENTRY_LIFE_MS)

  return {
    kind: 'server',
    name: 'durable-object',

    validate({ absoluteTimeout }) {
      // A session never outlives its absolute deadline, so its index entry may expire then (plus a minute for
      // clocks that differ): no call to the index on each change or touch.
      entryLife = Math.max(entryLife, absoluteTimeout * 1000 + 60_000)
    },

    async get(key, ctx) {
      const text = await session(namespaceFor(ctx), key).read()
      return text === null ? null : parseStoredRecord(text)
    },

    async set(key, record, ttl, ctx, replaces) {
      const ns = namespaceFor(ctx)
      const text = encode(record)
      const { user, replacedUser } = ctx
      // The index entry first: a live session is never missing from its user's list (an entry whose record
      // never came is dropped when listing).
      const addEntry = user ? index(ns, user.user).addEntry(key, user.handle, life()) : undefined
      if (replaces === undefined) {
        await addEntry
        return await session(ns, key).write(text, ttl)
      }
      // Two objects, no transaction between them: take the old record first (nothing when it is gone, so a
      // destroy is never undone), then write the new one. A failure between them logs the user out.
      const [taken] = await Promise.all([session(ns, replaces).take(key), addEntry])
      if (!taken) return false
      const written = await session(ns, key).write(text, ttl)
      // The old entry last: until the new record has landed, a revocation that finds it follows the move (the
      // old object names the new id) and ends the session there.
      if (replacedUser) await index(ns, replacedUser.user).removeEntries([replaces])
      return written
    },

    async patch(key, patch, ttl, ctx) {
      const answer = await session(namespaceFor(ctx), key).change(
        encodePatch(patch),
        ttl,
        ctx.returnRecord === true,
      )
      return writeAnswer(answer)
    },

    async touch(key, meta, ttl, ctx) {
      const times = { createdAt: meta.createdAt, lastSeenAt: meta.lastSeenAt, expiresAt: meta.expiresAt }
      const answer = await session(namespaceFor(ctx), key).extend(times, ttl, ctx.returnRecord === true)
      return writeAnswer(answer)
    },

    async delete(key, ctx) {
      const ns = namespaceFor(ctx)
      // The record first, then its entry: never a live session without one.
      await session(ns, key).remove()
      if (ctx.user) await index(ns, ctx.user.user).removeEntries([key])
    },

    async userEntries(user, ctx) {
      return await index(namespaceFor(ctx), user).entries()
    },

    async getMany(keys, ctx) {
      const ns = namespaceFor(ctx)
      const texts = await Promise.all(keys.map((key) => session(ns, key).read()))
      return texts.map((text) => (text === null ? null : parseStoredRecord(text)))
    },

    async revokeUser(user, keys, ctx) {
      const ns = namespaceFor(ctx)
      const ended: string[] = []
      const revoked = await Promise.all(
        keys.map(async (key) => {
          let answer = await session(ns, key).revoke(user, false)
          let hit = answer.revoked
          // Regenerated meanwhile: the session lives on under the id its old object names. End it there too;
          // an object not written yet remembers the revocation and refuses that write.
          for (let hops = 0; answer.movedTo !== null && hops < MAX_FORWARDS; hops++) {
            ended.push(answer.movedTo)
            answer = await session(ns, answer.movedTo).revoke(user, true)
            hit ||= answer.revoked
          }
          return hit
        }),
      )
      // The records first, then their entries.
      await index(ns, user).removeEntries([...keys, ...ended])
      return revoked.filter(Boolean).length
    },
  }
}

/**
 * The Durable Object class that keeps sessions: export it from the Worker and bind it. One instance holds one
 * session's record, or one user's index. Its methods are called by `durableObjectStore` over RPC.
 */
export class SessionObject extends DurableObject {
  /** The alarm's time as last set or read here: undefined until known, null when none is set. */
  #alarmAt: number | null | undefined

  get #storage(): ObjectStorage {
    return (this.ctx as unknown as { storage: ObjectStorage }).storage
  }

  /** The live record's JSON text, or null; a record past its deadline reads as missing before its alarm. */
  read(): string | null {
    return this.#live()?.text ?? null
  }

  /** Writes a whole record. False when this id was regenerated away or revoked: it is not brought back. */
  async write(record: string, ttl: number): Promise<boolean> {
    const kv = this.#storage.kv
    if (kv.get(GONE) !== undefined) return false
    const deadline = Date.now() + positive(ttl)
    kv.put(RECORD, record)
    kv.put(DEADLINE, deadline)
    await this.#wakeBy(deadline)
    return true
  }

  /** Merges a patch into the live record; 'missing' when there is none (nothing is written then). */
  change(patch: string, ttl: number, answer: boolean): ChangeAnswer {
    const live = this.#live()
    if (live === null) return 'missing'
    const record = live.record()
    const merged = applyPatch(record, decodePatch(patch))
    return this.#rewrite(merged, ttl, answer)
  }

  /** New times and deadline for the live record, data and flash markers untouched. */
  extend(times: SessionTimes, ttl: number, answer: boolean): ChangeAnswer {
    const live = this.#live()
    if (live === null) return 'missing'
    const checked = storedTimes(times)
    if (checked === null) throw new TypeError('extend() needs three finite times')
    const record = live.record()
    return this.#rewrite({ data: record.data, meta: { ...record.meta, ...checked } }, ttl, answer)
  }

  /**
   * Regenerate's first step: ends the live record and remembers that the session moved to `to`. True when it
   * did, or when an earlier attempt of this move did; false when the record is gone (destroyed, expired).
   */
  async take(to: string): Promise<boolean> {
    const kv = this.#storage.kv
    const gone = kv.get(GONE) as Gone | undefined
    if (gone !== undefined) return gone.to === to
    const live = this.#live()
    if (live === null) return false
    const user = live.record().meta.user?.key
    await this.#forget(
      user === undefined ? { to, until: Date.now() + GONE_MS } : { to, user, until: Date.now() + GONE_MS },
    )
    return true
  }

  /** Deletes everything this object keeps. */
  async remove(): Promise<void> {
    await this.#storage.deleteAlarm()
    await this.#storage.deleteAll()
    this.#alarmAt = null
  }

  /**
   * Ends the record if it belongs to `user`. With `pending` (a regenerate moved the user's session here), an
   * object with no record yet remembers the revocation, so the write on its way is refused.
   */
  async revoke(user: string, pending: boolean): Promise<RevokeAnswer> {
    const kv = this.#storage.kv
    const gone = kv.get(GONE) as Gone | undefined
    if (gone !== undefined) return { revoked: false, movedTo: gone.user === user ? (gone.to ?? null) : null }
    const live = this.#live()
    if (live === null) {
      if (!pending) return { revoked: false, movedTo: null }
      // The user's session is on its way here: it is ended before it lands.
      await this.#forget({ until: Date.now() + GONE_MS })
      return { revoked: true, movedTo: null }
    }
    if (live.record().meta.user?.key !== user) return { revoked: false, movedTo: null }
    await this.remove()
    return { revoked: true, movedTo: null }
  }

  /** An index's entry for a session, kept for `life` ms unless removed sooner. */
  async addEntry(key: string, handle: string, life: number): Promise<void> {
    const expiresAt = Date.now() + positive(life)
    this.#storage.kv.put(ENTRY + key, { handle, expiresAt } satisfies Entry)
    await this.#wakeBy(expiresAt)
  }

  removeEntries(keys: string[]): void {
    const kv = this.#storage.kv
    for (const key of keys) kv.delete(ENTRY + key)
  }

  /** The index's entries that have not expired. */
  entries(): Array<{ key: string; handle: string }> {
    const now = Date.now()
    const out: Array<{ key: string; handle: string }> = []
    for (const [name, entry] of this.#storage.kv.list({ prefix: ENTRY }) as Iterable<[string, Entry]>) {
      if (entry.expiresAt > now) out.push({ key: name.slice(ENTRY.length), handle: entry.handle })
    }
    return out
  }

  /** Reclaims what has ended; sleeps again until the next deadline, or deletes the whole object. */
  override async alarm(): Promise<void> {
    const storage = this.#storage
    const kv = storage.kv
    const now = Date.now()
    // This alarm is spent: none is set while it runs.
    this.#alarmAt = null
    let next = Infinity
    const deadline = kv.get(DEADLINE) as number | undefined
    if (deadline !== undefined) {
      if (deadline > now) next = deadline
      else {
        kv.delete(RECORD)
        kv.delete(DEADLINE)
      }
    }
    const gone = kv.get(GONE) as Gone | undefined
    if (gone !== undefined) {
      if (gone.until > now) next = Math.min(next, gone.until)
      else kv.delete(GONE)
    }
    for (const [name, entry] of kv.list({ prefix: ENTRY }) as Iterable<[string, Entry]>) {
      if (entry.expiresAt > now) next = Math.min(next, entry.expiresAt)
      else kv.delete(name)
    }
    if (next === Infinity) await storage.deleteAll()
    else await this.#wakeBy(next)
  }

  /** The record and its deadline when it has one that has not passed (on this object's clock). */
  #live(): { text: string; record: () => SessionRecord } | null {
    const kv = this.#storage.kv
    const deadline = kv.get(DEADLINE) as number | undefined
    if (deadline === undefined || deadline <= Date.now()) return null
    const text = kv.get(RECORD)
    if (typeof text !== 'string') return null
    return {
      text,
      record: () => {
        const record = parseStoredRecord(text)
        if (record === null) throw new TypeError('The stored session record is damaged')
        return record
      },
    }
  }

  #rewrite(record: SessionRecord, ttl: number, answer: boolean): ChangeAnswer {
    const text = JSON.stringify(record)
    if (tooLarge(text)) return 'too-large'
    const kv = this.#storage.kv
    kv.put(RECORD, text)
    // The alarm set by the first write wakes, finds the later deadline and sleeps again until it.
    kv.put(DEADLINE, Date.now() + positive(ttl))
    return answer ? { record: text } : 'written'
  }

  /** Drops the record, keeping only a note that it was moved or revoked, until `gone.until`. */
  async #forget(gone: Gone): Promise<void> {
    const kv = this.#storage.kv
    kv.delete(RECORD)
    kv.delete(DEADLINE)
    kv.put(GONE, gone)
    await this.#wakeBy(gone.until)
  }

  /** Makes sure the alarm fires by `time` (an earlier one wakes, finds nothing due and sleeps again). */
  async #wakeBy(time: number): Promise<void> {
    // Known here after the first call: 100 logins of one user at once then cost no read of the alarm each.
    if (this.#alarmAt === undefined) this.#alarmAt = await this.#storage.getAlarm()
    if (this.#alarmAt !== null && this.#alarmAt <= time) return
    this.#alarmAt = time
    await this.#storage.setAlarm(time)
  }
}

/** The storage of a SQLite-backed object, as this class uses it (the synchronous KV API and the alarm). */
interface ObjectStorage {
  kv: {
    get(key: string): unknown
    put(key: string, value: unknown): void
    delete(key: string): boolean
    list(options: { prefix: string }): Iterable<[string, unknown]>
  }
  getAlarm(): Promise<number | null>
  setAlarm(time: number): Promise<void>
  deleteAlarm(): Promise<void>
  deleteAll(): Promise<void>
}

/** A note left where a record was: moved to `to` by a regenerate (a session of `user`), or revoked. */
interface Gone {
  to?: string
  user?: string
  /** When the note is dropped. */
  until: number
}

interface Entry {
  handle: string
  expiresAt: number
}

const RECORD = 'record'
const DEADLINE = 'deadline'
const GONE = 'gone'
const ENTRY = 'entry:'

function positive(ms: number): number {
  if (!Number.isFinite(ms) || ms <= 0) throw new TypeError('A TTL is a positive number of milliseconds')
  return ms
}

function tooLarge(text: string): boolean {
  // UTF-8 takes at most 3 bytes per UTF-16 unit: only a text that long can be over, and only it is counted.
  return text.length * 3 > MAX_RECORD_BYTES && utf8Length(text) > MAX_RECORD_BYTES
}

/** The record as the JSON text the object keeps; `ERR_TOO_LARGE` before any call. */
function encode(record: SessionRecord): string {
  const text = JSON.stringify(record)
  if (tooLarge(text)) throw tooLargeError()
  return text
}

function tooLargeError(): SessionError {
  return new SessionError(
    'ERR_TOO_LARGE',
    `durableObjectStore(): a session's record is over ${MAX_RECORD_BYTES} bytes, the most a Durable Object value holds`,
  )
}

/** A patch as JSON text: `set` keeps every key (`__proto__` included), which structured clone might not. */
function encodePatch(patch: RecordPatch): string {
  return JSON.stringify({ set: patch.set, delete: patch.delete, flash: patch.flash, meta: patch.meta })
}

function decodePatch(text: string): RecordPatch {
  const value = JSON.parse(text) as { set: unknown; delete: unknown; flash: unknown; meta: unknown }
  const set = storedData(value.set)
  const meta = storedTimes(value.meta)
  const strings = (list: unknown): list is string[] =>
    Array.isArray(list) && list.every((key) => typeof key === 'string')
  if (set === null || meta === null || !strings(value.delete) || !strings(value.flash)) {
    throw new TypeError('change() needs a patch')
  }
  return { set, delete: value.delete, flash: value.flash, meta }
}

function writeAnswer(answer: ChangeAnswer): WriteAnswer {
  if (answer === 'missing') return false
  if (answer === 'written') return true
  if (answer === 'too-large') throw tooLargeError()
  const record = parseStoredRecord(answer.record)
  if (record === null) throw new TypeError('The stored session record is damaged')
  return record
}

function isNamespace(value: unknown): value is SessionObjectNamespace {
  if (typeof value !== 'object' || value === null) return false
  const ns = value as Record<string, unknown>
  return typeof ns.idFromName === 'function' && typeof ns.get === 'function'
}
