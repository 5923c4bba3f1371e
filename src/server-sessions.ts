/**
 * @module Sessions behind a signed id: the browser holds `<id>.<signature>`, the record lives in a server store
 * under `base64url(SHA-256(id))`.
 */

import { MAX_COOKIE_CANDIDATES, readCookies } from './cookie.ts'
import { CookieCache, type OpenedCache } from './cookie-cache.ts'
import {
  BoundedCache,
  createSessionId,
  hashKey,
  IdSigner,
  isSignedIdShape,
  type VerifiedId,
} from './crypto.ts'
import { SessionError } from './errors.ts'
import { Lifetimes, timesOf } from './lifetimes.ts'
import type { ResolvedSessionsOptions } from './options.ts'
import {
  type CacheBinding,
  createState,
  hasData,
  Session,
  type SessionBinding,
  type SessionState,
  STATE,
  settle,
} from './session.ts'
import { appendSetCookies, SetCookieWriter } from './set-cookie.ts'
import {
  copyData,
  type RecordPatch,
  type ServerStore,
  type SessionData,
  type SessionMeta,
  type SessionRecord,
  type SessionUser,
  type StoreContext,
  type WriteAnswer,
} from './store.ts'
import { type CallEntries, callStore } from './store-call.ts'
import { hashUserId, legacyHandle, requestInfo, type UserSession, UserSessions } from './user-sessions.ts'

/** Options of `sessions.load()`. */
export interface LoadOptions {
  /** Ignore the cookie cache: read the store, so a revocation or a change made elsewhere is seen at once. */
  fresh?: boolean
}

export class ServerSessions<Data extends object> {
  readonly options: ResolvedSessionsOptions
  readonly #store: ServerStore
  readonly #signer: IdSigner
  readonly #lifetimes: Lifetimes
  readonly #cookies: SetCookieWriter
  readonly #users: UserSessions
  /** Storage key → the handle derived for a record without one (see `#legacyHandle`). */
  readonly #legacyHandles = new BoundedCache<string>(10_000)
  /** The cookie cache, when on. */
  readonly #cache: CookieCache | undefined

  constructor(options: ResolvedSessionsOptions, store: ServerStore, secrets: readonly string[]) {
    this.options = options
    this.#store = store
    this.#signer = new IdSigner(secrets)
    this.#lifetimes = new Lifetimes(options, store.minTouchInterval ?? 0)
    this.#users = new UserSessions(store, options, this.#lifetimes)
    this.#cookies = new SetCookieWriter(options.cookie)
    const cache = options.cookieCache
    if (cache)
      this.#cache = new CookieCache(
        options.cookie.name,
        cache.maxAge,
        secrets,
        this.#lifetimes,
        this.#cookies,
      )
  }

  async load(request: Request, env?: unknown, options?: LoadOptions): Promise<Session<Data>> {
    const info = requestInfo(request, env)
    const binding: SessionBinding = { key: null, rotated: false, signed: null, cookies: [], user: undefined }
    const name = this.options.cookie.name
    const cookies = readCookies(request.headers.get('cookie'), name)
    const cache = this.#cache
    let cached: string | null = null
    if (cache) {
      const held = cache.held(cookies)
      binding.cache = { held: held.held, view: null, rotated: false }
      if (options?.fresh !== true) cached = held.value
    }
    /** The cache cookie, opened once (whichever session cookie it turns out to copy). */
    let opened: OpenedCache | null | undefined
    let tried = 0
    for (let i = 0; i < cookies.length; i++) {
      const [cookieName, value] = cookies[i] as [string, string]
      if (cookieName !== name) continue
      binding.cookies = [name]
      // A value verified before needs no check and no await: most requests carry one.
      let verified: VerifiedId | null | undefined = this.#signer.cached(value)
      if (!verified && !isSignedIdShape(value)) continue
      if (++tried > MAX_COOKIE_CANDIDATES) break
      verified ??= await this.#signer.verify(value)
      if (!verified) continue
      binding.rotated = verified.rotated
      binding.signed = verified.rotated ? null : value
      // A cache cookie copying this id's record, still trusted: no store call at all.
      if (cache && cached !== null) {
        if (opened === undefined) {
          const answer = cache.open(cached)
          opened = answer instanceof Promise ? await answer : answer
        }
        if (opened && cache.trusted(opened, verified.key, this.#lifetimes.now()))
          return this.#open(verified.id, verified.key, opened.view, info, binding, opened)
      }
      // A signed id: the store decides whether it is still a session. A missing or expired record does not end
      // the search (a stale cookie may precede the live one); a client never chooses its id.
      const store = this.#store
      const answer = this.#call(env, 'read', (ctx) => store.get(verified.key, ctx))
      const record = answer instanceof Promise ? await answer : answer
      if (!record || !this.#lifetimes.isLive(record.meta, this.#lifetimes.now())) continue
      return this.#open(verified.id, verified.key, record, info, binding)
    }
    binding.rotated = false
    binding.signed = null
    const now = this.#lifetimes.now()
    return this.#wrap(createState(createSessionId(), this.#lifetimes.start(now), info, binding))
  }

  /** The session of a live record (or of a cached view of it, `opened`). */
  async #open(
    id: string,
    key: string,
    record: SessionRecord,
    info: ReturnType<typeof requestInfo>,
    binding: SessionBinding,
    opened?: OpenedCache,
  ): Promise<Session<Data>> {
    binding.key = key
    if (opened && binding.cache) {
      binding.cache.view = opened.view
      binding.cache.rotated = opened.rotated
    }
    const { handle, user } = record.meta
    if (user && handle) binding.user = { user: user.key, handle }
    // A record written before handles existed gets one derived from its key: stable, and no bearer token.
    const state = createState(
      id,
      record.meta,
      info,
      binding,
      record.data,
      handle ?? this.#legacyHandles.get(key) ?? (await this.#legacyHandle(key)),
    )
    return this.#wrap(state)
  }

  async commit(session: Session<Data>, response: Response): Promise<Response> {
    const state = session[STATE]
    const { binding, request } = state
    const name = this.options.cookie.name
    const now = this.#lifetimes.now()
    const setCookies: string[] = []
    const cache = binding.cache

    if (state.phase === 'destroyed') {
      if (binding.key !== null) {
        const key = binding.key
        const entries = binding.user ? { user: binding.user } : undefined
        await this.#call(request.env, 'delete', (ctx) => this.#store.delete(key, ctx), entries)
        binding.key = null
        binding.user = undefined
      }
      if (binding.cookies.length > 0) setCookies.push(this.#cookies.clear(name, request.url))
      binding.cookies = []
      this.#clearCache(cache, request.url, setCookies)
    } else if (
      state.phase === 'regenerated' ||
      (state.phase === 'unsaved' && (hasData(state) || state.user !== null))
    ) {
      // A cached view may miss another tab's recent change: a whole record is never written from one.
      if (state.phase === 'regenerated' && cache?.view && !(await this.#rebuild(state, now)))
        return this.#ended(session, response)
      // A whole record under a new id: a new session, or a regenerated one replacing its old record.
      const [key, value] = await this.#keyAndCookie(state.id, state)
      const meta = this.#lifetimes.written(state, now)
      // A copy: the session may still change after commit, and a store may keep what it was given.
      const record = { data: copyData(state.data), meta }
      const replaces = binding.key ?? undefined
      const entry = meta.user ? { user: meta.user.key, handle: state.handle } : undefined
      const written = await this.#call(
        request.env,
        'write',
        (ctx) => this.#store.set(key, record, this.#ttl(meta, now), ctx, replaces),
        { user: entry, replacedUser: binding.user },
      )
      if (!written) return this.#ended(session, response)
      const bound = state.userChanged && meta.user !== undefined
      this.#settle(state, key, value, meta)
      setCookies.push(this.#cookies.cookie(name, value, meta.expiresAt - now, request.url))
      // The record is ours alone (a fresh id): the cache copies what was written.
      if (cache) await this.#issueCache(cache, key, record, now, request.url, setCookies)
      if (bound && this.#users.limit !== undefined)
        await this.#users.trim(meta.user as SessionUser, key, request.env)
    } else if (state.phase === 'stored') {
      const key = binding.key as string
      const changed = state.changes.size > 0
      if (changed || this.#lifetimes.touchDue(state, now)) {
        const meta = this.#lifetimes.written(state, now)
        const ttl = this.#ttl(meta, now)
        const store = this.#store
        const entries: CallEntries = {}
        if (binding.user) entries.user = binding.user
        if (cache) entries.returnRecord = true
        const answer: WriteAnswer = await this.#call(
          request.env,
          'write',
          (ctx) =>
            changed || !store.touch
              ? store.patch(key, patchOf(state, meta), ttl, ctx)
              : store.touch(key, timesOf(meta), ttl, ctx),
          entries,
        )
        if (!answer) return this.#ended(session, response)
        const value = binding.signed ?? (await this.#signer.sign(state.id, key))
        this.#settle(state, key, value, meta)
        // The deadline moved: send the cookie again so its Max-Age follows.
        setCookies.push(this.#cookies.cookie(name, value, meta.expiresAt - now, request.url))
        // Never stale for its own writes: the cache copies the record as the store holds it after this write
        // (another tab's concurrent change included), or, where the store cannot answer it, is cleared.
        if (cache) {
          if (typeof answer === 'object')
            await this.#issueCache(cache, key, answer, now, request.url, setCookies)
          else this.#clearCache(cache, request.url, setCookies)
        }
      } else {
        if (binding.rotated) {
          const value = await this.#signer.sign(state.id, key)
          this.#settle(state, key, value, state.meta)
          setCookies.push(this.#cookies.cookie(name, value, state.meta.expiresAt - now, request.url))
        }
        if (cache?.view) {
          // Sealed under an older secret: sealed again under the first, trusted no longer than it was.
          const view = cache.view
          if (cache.rotated) {
            const cookie = await this.#cacheCookie(() => this.#cache?.reseal(view, now, request.url))
            this.#placeCache(cache, cookie, request.url, setCookies)
          }
        } else if (cache) {
          // This request read the store: its record, unchanged, is what the cache copies.
          await this.#issueCache(cache, key, state, now, request.url, setCookies)
        }
      }
    } else {
      if (binding.cookies.length > 0) {
        // No cookie opened a session and nothing to keep: clear ours once, so it is not checked on every request.
        setCookies.push(this.#cookies.clear(name, request.url))
        binding.cookies = []
      }
      this.#clearCache(cache, request.url, setCookies)
    }
    return appendSetCookies(response, setCookies)
  }

  /**
   * Before a regenerate from a cached view writes a whole record: the stored record, read now, with this
   * request's changes and `keep` applied to it, so a change another tab made since the cache was issued is kept.
   * False when the record is gone or expired (revoked, destroyed, regenerated elsewhere): the session ends.
   */
  async #rebuild(state: SessionState, now: number): Promise<boolean> {
    const { binding, request } = state
    const key = binding.key as string
    const view = binding.cache?.view as NonNullable<CacheBinding['view']>
    const store = this.#store
    const answer = this.#call(request.env, 'read', (ctx) => store.get(key, ctx))
    const stored = answer instanceof Promise ? await answer : answer
    if (!stored || !this.#lifetimes.isLive(stored.meta, now)) return false
    const edited = new Set(state.edited)
    for (const changed of state.changes.keys()) edited.add(changed)
    const storedFlash = stored.meta.flash ?? []
    const data: SessionData = copyData()
    const flash = new Set<string>()
    for (const name of Object.keys(stored.data)) {
      if (edited.has(name)) continue
      // A key the view held stays unless this request dropped it (keep); one added since stays unless keep
      // names other keys.
      const kept = Object.hasOwn(view.data, name)
        ? Object.hasOwn(state.data, name)
        : state.kept === null || state.kept.has(name)
      if (!kept) continue
      data[name] = stored.data[name]
      if (storedFlash.includes(name)) flash.add(name)
    }
    for (const name of edited) {
      if (!Object.hasOwn(state.data, name)) continue
      data[name] = state.data[name]
      if (state.flash.has(name)) flash.add(name)
    }
    state.data = data
    state.flash = flash
    return true
  }

  /** Issues a cache copying `record` (under `key`, as the store holds it at `now`), or clears the old one. */
  async #issueCache(
    cache: CacheBinding,
    key: string,
    record: Pick<SessionRecord, 'data' | 'meta'>,
    now: number,
    url: string,
    setCookies: string[],
  ): Promise<void> {
    const cookie = await this.#cacheCookie(() => this.#cache?.issue(key, record.data, record.meta, now, url))
    this.#placeCache(cache, cookie, url, setCookies)
  }

  /** A cache cookie, or null: a failure to seal one costs the next request a store read, never this response. */
  async #cacheCookie(make: () => Promise<string | null> | undefined): Promise<string | null> {
    try {
      return (await make()) ?? null
    } catch {
      return null
    }
  }

  #placeCache(cache: CacheBinding, cookie: string | null, url: string, setCookies: string[]): void {
    cache.view = null
    cache.rotated = false
    if (cookie === null) {
      this.#clearCache(cache, url, setCookies)
      return
    }
    setCookies.push(cookie)
    cache.held = true
  }

  /** Clears the cache cookie the browser holds, if any: the next read goes to the store. */
  #clearCache(cache: CacheBinding | undefined, url: string, setCookies: string[]): void {
    if (!cache) return
    cache.view = null
    cache.rotated = false
    if (!cache.held || !this.#cache) return
    setCookies.push(this.#cache.clear(url))
    cache.held = false
  }

  async count(env?: unknown): Promise<number> {
    const store = this.#store
    if (!store.count)
      throw new SessionError('ERR_UNSUPPORTED', `The ${store.name} store cannot count sessions`)
    const count = store.count.bind(store)
    return await this.#call(env, 'count', (ctx) => count(ctx))
  }

  listUserSessions(userId: string, env?: unknown): Promise<UserSession[]> {
    return this.#users.list(userId, env)
  }

  revokeUserSession(userId: string, handle: string, env?: unknown): Promise<boolean> {
    return this.#users.revokeOne(userId, handle, env)
  }

  revokeUserSessions(userId: string, options: { except?: string } = {}, env?: unknown): Promise<number> {
    return this.#users.revokeAll(userId, options, env)
  }

  countUsers(env?: unknown): Promise<number> {
    return this.#users.count(env)
  }

  /**
   * The derived handle of a record written before handles existed, remembered: such a record keeps having no
   * handle while it is only patched, and a digest on each of its requests would be crypto on the hot path.
   */
  async #legacyHandle(key: string): Promise<string> {
    const handle = await legacyHandle(key)
    this.#legacyHandles.set(key, handle)
    return handle
  }

  #wrap(state: SessionState): Session<Data> {
    return new Session<Data>(state, createSessionId)
  }

  /**
   * The storage key and the signed cookie value of a new id: independent Web Crypto calls, run together; with
   * them the key of a user `setUser` named.
   */
  async #keyAndCookie(id: string, state: SessionState): Promise<[string, string]> {
    const key = hashKey(id)
    const user = state.user
    const [storageKey, value, userKey] = await Promise.all([
      key,
      this.#signer.sign(id, key),
      user && user.key === null ? hashUserId(user.id) : undefined,
    ])
    if (user && userKey !== undefined) user.key = userKey
    return [storageKey, value]
  }

  #ttl(meta: SessionMeta, now: number): number {
    return Math.max(meta.expiresAt - now, this.#store.minTtl ?? 1)
  }

  /** After a successful write: the session is now the stored one. */
  #settle(state: SessionState, key: string, signed: string, meta: SessionMeta): void {
    state.binding.key = key
    state.binding.signed = signed
    settle(state, meta, [this.options.cookie.name])
  }

  /**
   * A write found the record gone (destroyed or regenerated by a concurrent request, or expired): the session
   * ends. Its cookie is left alone: the request that destroyed the record clears it, and the one that regenerated
   * it sends the new cookie, which a clearing sent from here could overwrite in the browser, ending the session
   * it moved to. A stale cookie opens nothing anyway. Its cache cookie is cleared, though: it would keep opening
   * the ended session until `maxAge` (overwriting another request's new cache costs only a store read).
   */
  #ended(session: Session<Data>, response: Response): Response {
    const state = session[STATE]
    session.destroy()
    state.binding.key = null
    state.binding.cookies = []
    state.binding.user = undefined
    const setCookies: string[] = []
    this.#clearCache(state.binding.cache, state.request.url, setCookies)
    return appendSetCookies(response, setCookies)
  }

  /** A store call with the timeout applied and every failure turned into `ERR_STORE`. */
  #call<T>(
    env: unknown,
    operation: string,
    run: (ctx: StoreContext) => T | Promise<T>,
    entries?: CallEntries,
  ): T | Promise<T> {
    return callStore(this.#store, this.options.storeTimeout, env, operation, run, entries)
  }
}

/** The changed keys, and which of the set ones are flash values: a change set, never a whole list. */
function patchOf(state: SessionState, meta: SessionMeta): RecordPatch {
  const patch: RecordPatch = { set: copyData(), delete: [], flash: [], meta: timesOf(meta) }
  for (const [key, isSet] of state.changes) {
    if (isSet) {
      patch.set[key] = state.data[key]
      if (state.flash.has(key)) patch.flash.push(key)
    } else patch.delete.push(key)
  }
  return patch
}
