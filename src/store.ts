/**
 * @module The contract between the sessions layer and a store, and the record every store keeps.
 *
 * Two kinds of store exist. A server store keeps records under a key; the browser holds only a signed id.
 * A cookie store keeps nothing: the record travels sealed inside the cookie.
 */

/** Session data: string keys, plain JSON values. */
export type SessionData = Record<string, unknown>

/**
 * The deadlines a record carries. Times are milliseconds on the sessions' clock (the injected `now`).
 * A store copies them but never compares them with its own clock: expiry is judged by the sessions layer.
 */
export interface SessionMeta {
  /** When the session (this id) was created. */
  createdAt: number
  /** The last activity written to the store (writes and touches; reads in between are not written). */
  lastSeenAt: number
  /** The nearer of the idle and absolute deadlines, as of `lastSeenAt`. */
  expiresAt: number
  /** Data keys set with `flash()`: removed by their next read. Absent when empty. */
  flash?: string[]
}

export interface SessionRecord {
  data: SessionData
  meta: SessionMeta
}

/** A change to an existing record: only the keys that changed, so concurrent writers of other keys keep theirs. */
export interface RecordPatch {
  /** Data keys to set (values are JSON-safe copies). */
  set: SessionData
  /** Data keys to remove. */
  delete: string[]
  /** The record's new metadata, whole. */
  meta: SessionMeta
}

/** What every store call receives. */
export interface StoreContext {
  /** The second argument of `sessions.load(request, env)`: Workers bindings, when a store needs them. */
  env: unknown
  /** Aborted when the call exceeds `storeTimeout`; stores that do I/O should pass it on. */
  signal: AbortSignal
}

/** Limits a store places on the sessions' options, checked when `createSessions` is called. */
export interface StoreTimingOptions {
  /** Seconds. */
  idleTimeout: number
  /** Seconds. */
  absoluteTimeout: number
  /** Seconds. */
  touchInterval: number
}

/**
 * A store that keeps records under a key. Keys arrive already hashed (`base64url(SHA-256(id))`); the store adds
 * its own prefix. TTLs are relative milliseconds, always positive.
 */
export interface ServerStore {
  readonly kind: 'server'
  /** For messages and benchmarks: `'memory'`, `'upstash'`... */
  readonly name: string
  /**
   * The store answers from this process's memory (`memoryStore()`): its calls settle at once and never need
   * aborting, so the sessions layer makes them with no timer, no signal and no check of whether they settled.
   * Optional; leave it out for any store that waits on I/O. Set it as a non-enumerable property, as
   * `memoryStore()` does, so that a store made by spreading one and replacing methods (a wrapper that may
   * wait) is not taken for local. A wrapper that keeps the property (a Proxy, a method replaced in place) and
   * may make calls wait must answer `local: false`, or a call that never settles would hang its request.
   */
  readonly local?: boolean
  /** Smallest TTL (ms) the store can keep; shorter TTLs are raised to it (Cloudflare KV: 60 000). */
  readonly minTtl?: number
  /** Least time (ms) between two touches of one record (Cloudflare KV allows one write per second per key). */
  readonly minTouchInterval?: number
  /** Throws `SessionError('ERR_CONFIG')` when the sessions' options cannot be honoured by this store. */
  validate?(options: StoreTimingOptions): void
  /** The record, or null when missing. One round trip. */
  get(key: string, ctx: StoreContext): Promise<SessionRecord | null>
  /**
   * Writes a whole record, replacing any under `key`. With `replaces` (regenerate), the old key is deleted in
   * the same round trip, and nothing is written unless the old record still exists (a concurrent `destroy`
   * must not be undone): resolves false then. Without `replaces`, resolves true. A retry of a write that landed
   * (the old record gone, `key` already there: a fresh id only this write creates) resolves true again.
   */
  set(key: string, record: SessionRecord, ttl: number, ctx: StoreContext, replaces?: string): Promise<boolean>
  /**
   * Applies a patch to an existing record and sets its TTL. Never recreates a missing (destroyed or expired)
   * record: resolves false and writes nothing then.
   */
  patch(key: string, patch: RecordPatch, ttl: number, ctx: StoreContext): Promise<boolean>
  /**
   * Extends the TTL and writes the new metadata, leaving the data alone (Redis: `PEXPIRE`). Resolves false when
   * the record is missing. Optional: without it the sessions layer touches with an empty `patch`.
   */
  touch?(key: string, meta: SessionMeta, ttl: number, ctx: StoreContext): Promise<boolean>
  delete(key: string, ctx: StoreContext): Promise<void>
  /** Live sessions. Optional: `sessions.count()` rejects with `ERR_UNSUPPORTED` without it. */
  count?(ctx: StoreContext): Promise<number>
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

/**
 * Not part of the public contract. A store's `get` may carry, under this key, the same read answering at once
 * (no promise): the sessions layer then calls that instead, and a request whose cookie was verified before
 * awaits nothing until its handler runs. It belongs to the function, so a wrapper that replaces `get` (a Proxy,
 * a spread, an assignment) does not keep it, and its own `get` is what gets called.
 */
export const GET_NOW: unique symbol = Symbol('edge-session.getNow')
