/**
 * @module The contract between the sessions layer and a store, and the record every store keeps.
 *
 * Two kinds of store exist. A server store keeps records under a key; the browser holds only a signed id.
 * A cookie store keeps nothing: the record travels sealed inside the cookie.
 */

/** Session data: string keys, plain JSON values. */
export type SessionData = Record<string, unknown>

/**
 * Objects whose prototype chain holds no `__proto__` accessor (their prototype is an empty object with a null
 * prototype): every string key, `__proto__` included, is a plain own key. Unlike `Object.create(null)`, which V8
 * keeps in slow dictionary mode, they have fast properties: copying one per request costs what a literal does.
 */
function DataObject(this: SessionData): void {}
DataObject.prototype = Object.create(null) as object

/** A new data object holding a copy of the own keys of `from` (none when omitted): see {@link DataObject}. */
export function copyData(from?: SessionData): SessionData {
  const data = new (DataObject as unknown as new () => SessionData)()
  return from === undefined ? data : Object.assign(data, from)
}

/**
 * The times a record carries. Times are milliseconds on the sessions' clock (the injected `now`).
 * A store copies them but never compares them with its own clock: expiry is judged by the sessions layer.
 */
export interface SessionTimes {
  /** When the session's absolute lifetime started. */
  createdAt: number
  /** The last activity written to the store (writes and touches; reads in between are not written). */
  lastSeenAt: number
  /** The nearer of the idle and absolute deadlines, as of `lastSeenAt`. */
  expiresAt: number
}

/** The user a session is bound to (`session.setUser()`), and what a device list shows of it. */
export interface SessionUser {
  /** The app's user id, as given to `setUser`. Kept in the record so `session.userId` works; never in a key name. */
  id: string
  /** `base64url(SHA-256(id))`: what stores name the user's index by. */
  key: string
  /** The User-Agent of the request that bound the session (first 256 characters), or null. */
  agent: string | null
  /** The label given to `setUser` (at most 128 characters), or null. */
  label: string | null
}

/** A record's metadata: its times, its handle, its user, and which data keys hold flash values. */
export interface SessionMeta extends SessionTimes {
  /** Data keys set with `flash()`: removed by their next read. Absent when empty. */
  flash?: string[]
  /**
   * An opaque name of this session id (22 base64url characters, 132 random bits): what a device list shows and a
   * revocation names. Not a bearer token. Absent in records written before it existed.
   */
  handle?: string
  /** The user the session is bound to; absent for an anonymous session. */
  user?: SessionUser
}

/** A session's entry in its user's index: its storage key and its handle. */
export interface UserEntry {
  /** The user's key (`SessionUser.key`). */
  readonly user: string
  readonly handle: string
}

export interface SessionRecord {
  data: SessionData
  meta: SessionMeta
}

/**
 * A change to an existing record: only the keys that changed, so concurrent writers of other keys keep theirs.
 * Flash markers travel the same way: a changed key is a flash after the patch exactly when it is listed in
 * `flash`; the markers of keys the patch does not name are left as the store holds them.
 */
export interface RecordPatch {
  /** Data keys to set (values are JSON-safe copies). A null-prototype object: `__proto__` is a plain key. */
  set: SessionData
  /** Data keys to remove. */
  delete: string[]
  /** Keys of `set` that are flash values. Every other key named in `set` or `delete` loses its marker. */
  flash: string[]
  /** The record's new times, whole. */
  meta: SessionTimes
}

/** What every store call receives. */
export interface StoreContext {
  /** The second argument of `sessions.load(request, env)`: Workers bindings, when a store needs them. */
  env: unknown
  /** Aborted when the call exceeds `storeTimeout`; stores that do I/O should pass it on. */
  signal: AbortSignal
  /**
   * The user-index entry of the record this call writes, touches or deletes, when the record is bound to a user:
   * a store that keeps an index per user updates that entry in the same step (so its scripts can name the
   * index's key up front). Absent for anonymous sessions.
   */
  user?: UserEntry
  /** For a `set` that `replaces` a record bound to a user: that record's entry, removed with it. */
  replacedUser?: UserEntry
  /**
   * True when the sessions keep a cookie cache (`cookieCache`): `patch` and `touch` should then answer the record
   * as the store holds it after the write, read in the same round trip (so a concurrent change by another request
   * is in it), instead of `true`. A store that cannot answers `true`; the cache cookie is then cleared.
   */
  returnRecord?: boolean
}

/**
 * What `patch` and `touch` answer: false when the record is missing (nothing written), true when the write
 * landed, or, when asked with `ctx.returnRecord`, the record as the store holds it after the write.
 */
export type WriteAnswer = boolean | SessionRecord

/** Limits a store places on the sessions' options, checked when `createSessions` is called. */
export interface StoreTimingOptions {
  /** Seconds. */
  idleTimeout: number
  /** Seconds. */
  absoluteTimeout: number
  /** Seconds. */
  touchInterval: number
}

/** A store method's answer: the value itself when the store has it at once (memory), or a promise of it. */
export type Awaitable<T> = T | Promise<T>

/**
 * A store that keeps records under a key. Keys arrive already hashed (`base64url(SHA-256(id))`); the store adds
 * its own prefix. TTLs are relative milliseconds, always positive.
 *
 * Every method may answer with its value or a promise of it. A plain value is taken at once, with no timer; only
 * a pending promise is raced against `storeTimeout`. A method may also throw: the sessions layer turns any failure
 * into `SessionError('ERR_STORE')`.
 */
export interface ServerStore {
  /** Optional: any store that is not a cookie store is a server store. */
  readonly kind?: 'server'
  /** For messages and benchmarks: `'memory'`, `'upstash'`... */
  readonly name: string
  /** Smallest TTL (ms) the store can keep; shorter TTLs are raised to it (Cloudflare KV: 60 000). */
  readonly minTtl?: number
  /** Least time (ms) between two touches of one record (Cloudflare KV allows one write per second per key). */
  readonly minTouchInterval?: number
  /** Throws `SessionError('ERR_CONFIG')` when the sessions' options cannot be honoured by this store. */
  validate?(options: StoreTimingOptions): void
  /** The record, or null when missing. One round trip. */
  get(key: string, ctx: StoreContext): Awaitable<SessionRecord | null>
  /**
   * Writes a whole record, replacing any under `key`. With `replaces` (regenerate), the old key is deleted in
   * the same round trip, and nothing is written unless the old record still exists (a concurrent `destroy`
   * must not be undone): resolves false then. Without `replaces`, resolves true. A retry of a write that landed
   * (the old record gone, `key` already there: a fresh id only this write creates) resolves true again.
   */
  set(
    key: string,
    record: SessionRecord,
    ttl: number,
    ctx: StoreContext,
    replaces?: string,
  ): Awaitable<boolean>
  /**
   * Applies a patch to an existing record and sets its TTL. Never recreates a missing (destroyed or expired)
   * record: resolves false and writes nothing then. With `ctx.returnRecord`, resolves the merged record (see
   * {@link WriteAnswer}).
   */
  patch(key: string, patch: RecordPatch, ttl: number, ctx: StoreContext): Awaitable<WriteAnswer>
  /**
   * Extends the TTL and writes the new times, leaving the data and flash markers alone (Redis: `PEXPIRE`).
   * Resolves false when the record is missing. Optional: without it the sessions layer touches with an empty `patch`.
   */
  touch?(key: string, meta: SessionTimes, ttl: number, ctx: StoreContext): Awaitable<WriteAnswer>
  delete(key: string, ctx: StoreContext): Awaitable<void>
  /** Live sessions. Optional: `sessions.count()` rejects with `ERR_UNSUPPORTED` without it. */
  count?(ctx: StoreContext): Awaitable<number>

  // Sessions per user. A store that has these keeps, for every record whose `meta.user` is set, an entry in that
  // user's index, written, extended, moved and removed together with the record (atomically where it can), and
  // expiring with it: the index never outlives its sessions and needs no background job. Without them,
  // `listUserSessions`, `revokeUserSession(s)` and `countUsers` reject with `ERR_UNSUPPORTED`.

  /** The entries of a user's index whose records are live by the store's expiry. One round trip. */
  userEntries?(user: string, ctx: StoreContext): Awaitable<Array<{ key: string; handle: string }>>
  /** Several records at once, in the order of `keys` (null where missing). One round trip. */
  getMany?(keys: readonly string[], ctx: StoreContext): Awaitable<Array<SessionRecord | null>>
  /**
   * Deletes the records of `keys` that belong to `user`, with their index entries, in one round trip; keys of
   * another user's sessions are left alone. Resolves how many it deleted.
   */
  revokeUser?(user: string, keys: readonly string[], ctx: StoreContext): Awaitable<number>
  /** Distinct users with at least one live session, by the store's expiry. One round trip. */
  countUsers?(ctx: StoreContext): Awaitable<number>
}

/** What a cookie store seals: the whole session. */
export interface SealedSession {
  id: string
  data: SessionData
  meta: SessionMeta
}

/** A cookie store's sealing, bound to the sessions' secrets (keys derived once). */
export interface Sealer {
  seal(session: SealedSession): Promise<string>
  /**
   * Optional, cheap and synchronous: whether `value` has the shape of a seal (no crypto). Values that do not are
   * skipped without counting among the few cookie values a request may have checked.
   */
  isWellFormed?(value: string): boolean
  /**
   * The session sealed in `value`, or null when it is not a valid seal under any secret (never throws for bad
   * input). `rotated` is true when it was sealed under a secret other than the first.
   */
  unseal(value: string): Promise<{ session: SealedSession; rotated: boolean } | null>
}

/** A store that keeps the session sealed in the cookie itself. */
export interface CookieStore {
  readonly kind: 'cookie'
  readonly name: string
  /** Largest number of cookies one session may be split into (each at most 4096 bytes). */
  readonly maxChunks: number
  createSealer(secrets: readonly string[]): Sealer
}

export type SessionStore = ServerStore | CookieStore
