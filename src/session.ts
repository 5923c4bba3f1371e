/** @module The Session a handler reads and writes: data, change tracking, flash, regenerate, destroy. No I/O. */

import { encodeBase64url } from './crypto.ts'
import { SessionError } from './errors.ts'
import { copyIn, copyOut } from './json-values.ts'
import { copyData, type SessionData, type SessionMeta, type SessionUser, type UserEntry } from './store.ts'

/**
 * Where a session stands with its store and its browser:
 * - `unsaved`: no record under this id yet; the first write creates one (a new visitor).
 * - `stored`: a record exists under this id.
 * - `regenerated`: a new id; at commit the record moves to it from the key it was loaded from.
 * - `destroyed`: terminal; at commit the record is deleted and the cookie cleared.
 */
export type SessionPhase = 'unsaved' | 'stored' | 'regenerated' | 'destroyed'

/**
 * The internal state of a session, shared with the sessions layer (which owns loading and committing).
 * Not part of the public API.
 */
export interface SessionState {
  id: string
  phase: SessionPhase
  /** A stored session was found for this request (the public `isNew` is its negation); fixed at load. */
  readonly found: boolean
  meta: SessionMeta
  /** Null-prototype object: keys such as `__proto__` are plain data. */
  data: SessionData
  /** Keys changed since load (or the last commit): true when set, false when deleted. */
  changes: Map<string, boolean>
  /** Keys whose value is a flash (removed by their next read). */
  flash: Set<string>
  /** `touch()` was called: extend the deadline at commit, as often as the store allows. */
  touchRequested: boolean
  /** `regenerate({ renew: true })`: the next write starts a new absolute lifetime. */
  renew: boolean
  /** The handle of the current id: a new one with every new id. */
  handle: string
  /** The user the session is (or, after `setUser`, will be) bound to; `key` is null until the commit hashes it. */
  user: PendingUser | null
  /** `setUser()` was called: the commit binds (or unbinds) the user and applies `maxSessionsPerUser`. */
  userChanged: boolean
  /**
   * Keys changed before a `regenerate()` (which clears `changes`), and the keys every `regenerate({ keep })` kept:
   * what a regenerate from a cached view needs to rebuild the record from the store's. Null until a regenerate.
   */
  edited: Set<string> | null
  kept: Set<string> | null
  /** The request this session was loaded for. */
  readonly request: RequestInfo
  /** How the session is tied to its record and the browser's cookies: changes as commits land. */
  binding: SessionBinding
}

/** What the sessions layer keeps of the request. */
export interface RequestInfo {
  /** The request URL (decides `secure: 'auto'`). */
  readonly url: string
  /** The `env` given to `load()`, passed on to the store. */
  readonly env: unknown
  /** The request's headers: `setUser` records its User-Agent (read then, not on every request). */
  readonly headers: Headers
}

/** A user as the session holds it: a stored `SessionUser`, or one `setUser` named whose key is not hashed yet. */
export type PendingUser = Omit<SessionUser, 'key'> & { key: string | null }

/** The session's record and cookies as the store and the browser hold them now; owned by the sessions layer. */
export interface SessionBinding {
  /** Storage key of the session's record (server stores); null when none is stored. */
  key: string | null
  /** The cookie was signed or sealed under an older secret: re-issue it. */
  rotated: boolean
  /** The signed cookie value naming this session, when current (not rotated): re-sent without signing. */
  signed: string | null
  /** The stored record's entry in its user's index, when it is bound to a user. */
  user: UserEntry | undefined
  /** The session's own cookie names the browser holds (chunks included), to clear or replace. */
  cookies: string[]
  /** The cookie cache, when on (server stores). */
  cache?: CacheBinding
}

/** What a request holds of the cookie cache. */
export interface CacheBinding {
  /** The browser holds a cache cookie: a response that issues none clears it. */
  held: boolean
  /** The cached view the session was loaded from (no store read); null when the store was read. */
  view: CachedView | null
  /** The view was sealed under an older secret: re-seal it under the first. */
  rotated: boolean
}

/** A session as the cache cookie holds it: a copy of its record, for the storage key it names. */
export interface CachedView {
  /** The storage key of the record it copies: a cache cookie is ignored next to another session's cookie. */
  readonly key: string
  /** Never changed: a session loaded from it copies it. */
  readonly data: SessionData
  /** The record's times, handle and user; never a flash list (no cache is issued while a flash is held). */
  readonly meta: SessionMeta
  /** When the copy was taken from the store (the sessions' clock): it is trusted `maxAge` from then. */
  readonly issuedAt: number
}

export const STATE: unique symbol = Symbol('edge-session.state')

/** Longest label `setUser` keeps; longer ones are cut. */
export const MAX_LABEL = 128
/** Longest User-Agent a session records. */
export const MAX_AGENT = 256

/** Options of {@link Session.setUser}. */
export interface SetUserOptions {
  /** A name for this device or login, shown in the user's session list (at most 128 characters; longer is cut). */
  label?: string
}

/** Options of {@link Session.regenerate}. */
export interface RegenerateOptions<Data> {
  /** Keys to carry into the new session; all of them when omitted. */
  keep?: ReadonlyArray<keyof Data & string>
  /**
   * Start a new absolute lifetime (`absoluteTimeout` counted from this commit). Default false: the new id keeps
   * the old deadline, so a regenerate cannot keep a stolen session alive past `absoluteTimeout`. Use it at login.
   */
  renew?: boolean
}

/**
 * One user's session for one request. Reads are synchronous; nothing reaches the store until
 * `sessions.commit(session, response)`.
 *
 * Values must be plain JSON data (null, booleans, finite numbers, strings, arrays, plain objects). They are
 * copied in on `set` and out on `get`: change a value by setting it again.
 */
export class Session<Data extends object = SessionData> {
  readonly [STATE]: SessionState
  readonly #createId: () => string

  /** @internal Created by `sessions.load()`. */
  constructor(state: SessionState, createId: () => string) {
    this[STATE] = state
    this.#createId = createId
  }

  /** The session id. It changes on `regenerate()`. For a store-backed session it is the secret the cookie proves. */
  get id(): string {
    return this[STATE].id
  }

  /** True when no stored session was found for this request: a new visitor, or an expired or invalid cookie. */
  get isNew(): boolean {
    return !this[STATE].found
  }

  /** Creation time, ms since the epoch (on the sessions' clock). */
  get createdAt(): number {
    return this[STATE].meta.createdAt
  }

  /** When the session ends unless extended by activity, ms since the epoch. */
  get expiresAt(): number {
    return this[STATE].meta.expiresAt
  }

  /** The user this session is bound to (`setUser`), or null. */
  get userId(): string | null {
    return this[STATE].user?.id ?? null
  }

  /**
   * An opaque name of the current id, safe to render in HTML and to send to the user's other devices: what
   * `listUserSessions` shows and `revokeUserSession` takes. Not a bearer token. It changes with the id.
   */
  get handle(): string {
    return this[STATE].handle
  }

  /** True after `destroy()`. */
  get destroyed(): boolean {
    return this[STATE].phase === 'destroyed'
  }

  /** The value of `key` (a copy), or undefined. Reading a flash value removes it. */
  get<K extends keyof Data & string>(key: K): Data[K] | undefined {
    const state = this[STATE]
    const value = copyOut(state.data[key]) as Data[K] | undefined
    if (state.flash.has(key)) this.#remove(key)
    return value
  }

  /** Sets `key`. `undefined` deletes it. Throws `ERR_SERIALIZE` for a value that is not plain JSON data. */
  set<K extends keyof Data & string>(key: K, value: Data[K] | undefined): this {
    this.#assertActive('set')
    if (value === undefined) return this.delete(key)
    const state = this[STATE]
    state.data[key] = copyIn(value, key)
    state.changes.set(key, true)
    state.flash.delete(key)
    return this
  }

  /** Removes `key`. */
  delete<K extends keyof Data & string>(key: K): this {
    this.#assertActive('delete')
    if (Object.hasOwn(this[STATE].data, key)) this.#remove(key)
    return this
  }

  /** True when `key` holds a value. Does not consume a flash. */
  has<K extends keyof Data & string>(key: K): boolean {
    return Object.hasOwn(this[STATE].data, key)
  }

  /** A copy of all data. Does not consume flashes. */
  all(): Partial<Data> {
    return structuredClone({ ...this[STATE].data }) as Partial<Data>
  }

  /** Sets a value that the next `get(key)`, in this request or a later one, returns once and removes. */
  flash<K extends keyof Data & string>(key: K, value: Data[K]): this {
    this.set(key, value)
    const state = this[STATE]
    state.flash.add(key)
    return this
  }

  /**
   * Gives the session a new id, keeping its data (or only `keep`). At commit the new record is written, the old
   * one deleted and the new cookie sent. Call it when privileges change (log in, log out) to defeat session
   * fixation. The absolute deadline stays as it was unless `renew` is true (at login).
   */
  regenerate(options: RegenerateOptions<Data> = {}): this {
    this.#assertActive('regenerate')
    const state = this[STATE]
    // Remembered for a regenerate from a cached view, which rebuilds the record from the store's at commit.
    if (state.changes.size > 0) {
      state.edited ??= new Set()
      for (const key of state.changes.keys()) state.edited.add(key)
    }
    if (options.keep) {
      const keep = new Set<string>(options.keep)
      state.kept = state.kept === null ? keep : new Set([...state.kept].filter((key) => keep.has(key)))
      const kept: SessionData = copyData()
      for (const key of options.keep) if (Object.hasOwn(state.data, key)) kept[key] = state.data[key]
      for (const key of state.flash) if (!Object.hasOwn(kept, key)) state.flash.delete(key)
      state.data = kept
    }
    if (state.phase === 'stored') state.phase = 'regenerated'
    state.id = this.#createId()
    state.handle = createHandle()
    state.changes.clear()
    if (options.renew === true) state.renew = true
    return this
  }

  /**
   * Binds the session to a user at commit (log in), or unbinds it with `null` (log out, keeping the session).
   * Implies `regenerate({ renew: true })`: a new id, handle and absolute lifetime, so an id planted before login is
   * worthless after it. Records the request's User-Agent and the optional label for the user's session list.
   */
  setUser(userId: string | null, options: SetUserOptions = {}): this {
    this.#assertActive('setUser')
    if (userId !== null && (typeof userId !== 'string' || userId.length === 0 || userId.length > 1024)) {
      throw new SessionError(
        'ERR_SERIALIZE',
        'setUser() needs a user id: a string of 1 to 1024 characters, or null',
      )
    }
    const label = options.label
    if (label !== undefined && typeof label !== 'string') {
      throw new SessionError('ERR_SERIALIZE', 'setUser(): label must be a string')
    }
    this.regenerate({ renew: true })
    const state = this[STATE]
    state.user =
      userId === null
        ? null
        : {
            id: userId,
            key: null,
            agent: state.request.headers.get('user-agent')?.slice(0, MAX_AGENT) ?? null,
            label: label === undefined ? null : label.slice(0, MAX_LABEL),
          }
    state.userChanged = true
    return this
  }

  /** Ends the session: at commit its record is deleted and its cookie cleared. Later writes throw `ERR_DESTROYED`. */
  destroy(): void {
    const state = this[STATE]
    state.phase = 'destroyed'
    state.data = copyData()
    state.changes.clear()
    state.flash.clear()
  }

  /** Extends the session's deadline at commit even if nothing changed (still at most once per store limit). */
  touch(): this {
    this.#assertActive('touch')
    this[STATE].touchRequested = true
    return this
  }

  #remove(key: string): void {
    const state = this[STATE]
    delete state.data[key]
    state.changes.set(key, false)
    state.flash.delete(key)
  }

  #assertActive(operation: string): void {
    if (this[STATE].phase === 'destroyed') {
      throw new SessionError('ERR_DESTROYED', `Cannot ${operation}: the session was destroyed`)
    }
  }
}

/**
 * The state of a session: a fresh, empty one (`found` false), or one loaded from a record (`found` true). `data`
 * is copied (its values are never changed in place), so the record a store handed out stays as it was.
 */
export function createState(
  id: string,
  meta: SessionMeta,
  request: RequestInfo,
  binding: SessionBinding,
  data?: SessionData,
  handle: string = meta.handle ?? createHandle(),
): SessionState {
  const found = data !== undefined
  const state: SessionState = {
    id,
    phase: found ? 'stored' : 'unsaved',
    found,
    meta,
    data: copyData(data),
    changes: new Map(),
    flash: new Set(),
    touchRequested: false,
    renew: false,
    handle,
    user: meta.user ?? null,
    userChanged: false,
    edited: null,
    kept: null,
    request,
    binding,
  }
  if (found && meta.flash)
    for (const key of meta.flash) if (Object.hasOwn(state.data, key)) state.flash.add(key)
  return state
}

/** After a successful write: the session is now the stored one, under these cookies and this metadata. */
export function settle(state: SessionState, meta: SessionMeta, cookies: string[]): void {
  state.phase = 'stored'
  state.meta = meta
  state.binding.cookies = cookies
  state.binding.rotated = false
  state.changes.clear()
  state.touchRequested = false
  state.renew = false
  state.userChanged = false
  state.edited = null
  state.kept = null
  state.user = meta.user ?? null
  state.binding.user = meta.user && meta.handle ? { user: meta.user.key, handle: meta.handle } : undefined
}

/** A new handle: 132 random bits, base64url (22 characters). */
export function createHandle(): string {
  return encodeBase64url(crypto.getRandomValues(new Uint8Array(17))).slice(0, 22)
}

/** True when the session holds any data. */
export function hasData(state: SessionState): boolean {
  for (const _ in state.data) return true
  return false
}
