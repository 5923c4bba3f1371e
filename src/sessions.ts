/**
 * @module createSessions(): finds the session of a Request, and writes it back with the Response.
 */

import {
  type CookieAttributes,
  isAttributeValue,
  isCookieName,
  joinCookieValue,
  maxAgeAttribute,
  readCookies,
  type SameSite,
  serializeAttributes,
  splitCookieValue,
} from './cookie.ts'
import { CookieValueCache, createSessionId, hashKey, IdSigner } from './crypto.ts'
import { isSessionError, SessionError } from './errors.ts'
import { createState, loadedState, Session, type SessionOrigin, type SessionState, STATE } from './session.ts'
import type {
  CookieStore,
  RecordPatch,
  SealedSession,
  Sealer,
  ServerStore,
  SessionData,
  SessionMeta,
  SessionRecord,
  SessionStore,
  SessionTimes,
  StoreContext,
} from './store.ts'

/** Options of the session cookie. */
export interface CookieOptions {
  /** Default `'sid'`. A `__Host-` name requires `Secure`, `Path=/` and no `Domain`; `__Secure-` requires `Secure`. */
  name?: string
  /** Default `'/'`. */
  path?: string
  /** Default: none (the cookie goes to the exact host only). */
  domain?: string
  /** Default `'Lax'`. `'None'` requires `Secure`. */
  sameSite?: SameSite
  /**
   * Default `true`. Browsers keep Secure cookies set over http://localhost (Chromium also 127.0.0.1), so
   * development works with it on. `'auto'`: on unless the request URL is plain http to localhost, 127.0.0.1 or
   * [::1]; behind a reverse proxy that forwards to such an address over http, production cookies lose Secure.
   */
  secure?: boolean | 'auto'
  /** Default `true`: scripts cannot read the cookie. */
  httpOnly?: boolean
  /** Default `false`. CHIPS partitioned cookie; requires `Secure`. */
  partitioned?: boolean
}

export interface SessionsOptions {
  /** Where sessions live: `memoryStore()`, `upstashStore()`, `cloudflareKvStore()`, `cookieStore()`. */
  store: SessionStore
  /** One secret or several, each at least 32 characters. The first signs; every one verifies (rotation). */
  secrets: string | readonly string[]
  cookie?: CookieOptions
  /** Seconds without a request before the session ends. Default 1800 (30 minutes). */
  idleTimeout?: number
  /** Seconds from creation after which the session ends whatever the activity. Default 604800 (7 days). */
  absoluteTimeout?: number
  /** An unchanged session's deadline is extended at most this often, in seconds. Default 60. */
  touchInterval?: number
  /** Milliseconds a store call may take before it fails with `ERR_STORE`. Default 5000. */
  storeTimeout?: number
  /** The clock, in ms since the epoch. Default `Date.now`. */
  now?: () => number
}

/** The options in force, defaults applied. */
export interface ResolvedSessionsOptions {
  readonly store: SessionStore
  readonly cookie: Readonly<Required<Omit<CookieOptions, 'domain'>>> & { readonly domain: string | undefined }
  readonly idleTimeout: number
  readonly absoluteTimeout: number
  readonly touchInterval: number
  readonly storeTimeout: number
  readonly now: () => number
}

export interface Sessions<Data extends object = SessionData> {
  readonly options: ResolvedSessionsOptions
  /**
   * The session of `request`: the stored one its cookie names, or a fresh empty one when there is none, or the
   * cookie is forged, tampered with, or expired. Rejects only when the store fails (`ERR_STORE`).
   * @param env The Workers bindings, for stores that take their namespace from them.
   */
  load(request: Request, env?: unknown): Promise<Session<Data>>
  /**
   * Persists what changed and adds the `Set-Cookie` headers the session needs to `response` (or to a copy,
   * when its headers are immutable). Rejects with `ERR_STORE` (no cookie added) when the store fails, and
   * `ERR_TOO_LARGE` when a sealed cookie would not fit.
   */
  commit(session: Session<Data>, response: Response): Promise<Response>
  /** Live sessions, where the store can count them; rejects with `ERR_UNSUPPORTED` where it cannot. */
  count(env?: unknown): Promise<number>
}

const DEFAULTS = Object.freeze({
  idleTimeout: 30 * 60,
  absoluteTimeout: 7 * 24 * 3600,
  touchInterval: 60,
  storeTimeout: 5000,
})

/** Cookie values checked per request at most: a browser may send duplicates (other paths or domains). */
const MAX_CANDIDATES = 4

/**
 * Creates the sessions of an app. Options are checked now: a bad configuration throws `ERR_CONFIG` here, not at
 * the first request.
 *
 * @param options Store, secrets, cookie and timeouts.
 * @example
 * ```ts
 * const sessions = createSessions<{ count?: number }>({ store: memoryStore(), secrets: env.SESSION_SECRET })
 * const session = await sessions.load(request)
 * session.set('count', (session.get('count') ?? 0) + 1)
 * return sessions.commit(session, new Response('ok'))
 * ```
 * @see {@link Session} for what a handler can do with a session.
 */
export function createSessions<Data extends object = SessionData>(options: SessionsOptions): Sessions<Data> {
  const resolved = resolveOptions(options)
  return resolved.store.kind === 'cookie'
    ? new CookieSessions<Data>(resolved, resolved.store, secretsOf(options))
    : new ServerSessions<Data>(resolved, resolved.store, secretsOf(options))
}

abstract class BaseSessions<Data extends object> implements Sessions<Data> {
  readonly options: ResolvedSessionsOptions
  protected readonly now: () => number
  protected readonly idleMs: number
  protected readonly absoluteMs: number
  protected readonly touchMs: number
  /** The store's own floor between two touches, which even an explicit `touch()` respects. */
  protected readonly minTouchMs: number

  /** The cookie's attributes after Max-Age, written once: without Secure, and with it. */
  readonly #attributes: string
  readonly #secureAttributes: string

  constructor(options: ResolvedSessionsOptions, minTouchInterval: number) {
    this.options = options
    const c = options.cookie
    const attributes: CookieAttributes = {
      path: c.path,
      httpOnly: c.httpOnly,
      sameSite: c.sameSite,
      partitioned: c.partitioned,
    }
    if (c.domain !== undefined) attributes.domain = c.domain
    this.#attributes = serializeAttributes({ ...attributes, secure: false })
    this.#secureAttributes = serializeAttributes({ ...attributes, secure: true })
    this.now = options.now
    this.idleMs = options.idleTimeout * 1000
    this.absoluteMs = options.absoluteTimeout * 1000
    this.minTouchMs = minTouchInterval
    this.touchMs = Math.max(options.touchInterval * 1000, minTouchInterval)
  }

  abstract load(request: Request, env?: unknown): Promise<Session<Data>>
  abstract commit(session: Session<Data>, response: Response): Promise<Response>
  abstract count(env?: unknown): Promise<number>

  /** The nearer of the idle deadline (from `lastSeenAt`) and the absolute one (from `createdAt`). */
  protected deadline(createdAt: number, lastSeenAt: number): number {
    return Math.min(lastSeenAt + this.idleMs, createdAt + this.absoluteMs)
  }

  /** Expiry is judged here, on the sessions' clock, whatever the cookie or the store's TTL say. */
  protected isLive(meta: SessionMeta, now: number): boolean {
    return now < Math.min(meta.expiresAt, this.deadline(meta.createdAt, meta.lastSeenAt))
  }

  protected fresh(origin: SessionOrigin, now: number): Session<Data> {
    const meta = { createdAt: now, lastSeenAt: now, expiresAt: this.deadline(now, now) }
    return this.wrap(createState(createSessionId(), meta, origin))
  }

  protected wrap(state: SessionState): Session<Data> {
    return new Session<Data>(state, createSessionId)
  }

  /**
   * New metadata for a record written now. A new session, or one regenerated with `renew`, starts a new absolute
   * lifetime; any other write (a plain regenerate included) keeps the one it has.
   */
  protected metaAt(state: SessionState, now: number): SessionMeta {
    const createdAt = state.isNew || state.renew ? now : state.meta.createdAt
    const meta: SessionMeta = { createdAt, lastSeenAt: now, expiresAt: this.deadline(createdAt, now) }
    if (state.flash.size > 0) meta.flash = [...state.flash]
    return meta
  }

  /** Whether an unchanged session's deadline is due to be extended. */
  protected touchDue(state: SessionState, now: number): boolean {
    return now - state.meta.lastSeenAt >= (state.touchRequested ? this.minTouchMs : this.touchMs)
  }

  protected cookie(name: string, value: string, maxAgeMs: number, url: string): string {
    const secure = this.options.cookie.secure
    const attributes = (secure === 'auto' ? !isLocalHttp(url) : secure)
      ? this.#secureAttributes
      : this.#attributes
    // Nothing to check per response: the name was checked by createSessions (chunks only add `.N`), and values
    // are this library's own (base64url ids and signatures, iron seals, or empty).
    return `${name}=${value}${maxAgeAttribute(Math.ceil(maxAgeMs / 1000))}${attributes}`
  }

  /** After a successful write: the session is now the stored one, under these cookies and this metadata. */
  protected settled(state: SessionState, cookies: string[], meta: SessionMeta): void {
    state.origin.cookies = cookies
    state.origin.rotated = false
    state.isNew = false
    state.previousId = null
    state.meta = meta
    state.changes.clear()
    state.flashChanged = false
    state.touchRequested = false
    state.renew = false
  }

  protected clearCookie(name: string, url: string): string {
    return this.cookie(name, '', 0, url)
  }

  protected origin(request: Request, env: unknown): SessionOrigin {
    return { url: request.url, env, key: null, rotated: false, signed: null, cookies: [] }
  }
}

class ServerSessions<Data extends object> extends BaseSessions<Data> {
  readonly #store: ServerStore
  readonly #signer: IdSigner

  constructor(options: ResolvedSessionsOptions, store: ServerStore, secrets: readonly string[]) {
    super(options, store.minTouchInterval ?? 0)
    this.#store = store
    this.#signer = new IdSigner(secrets)
  }

  async load(request: Request, env?: unknown): Promise<Session<Data>> {
    const origin = this.origin(request, env)
    const name = this.options.cookie.name
    const cookies = readCookies(request.headers.get('cookie'), name)
    if (cookies.length === 0) return this.fresh(origin, this.now())
    origin.cookies = cookieNames(cookies)
    let candidates = 0
    for (let i = 0; i < cookies.length && candidates < MAX_CANDIDATES; i++) {
      const cookie = cookies[i] as [string, string]
      if (cookie[0] !== name) continue
      candidates++
      const value = cookie[1]
      // A value verified before needs no await: most requests carry one.
      const verified = this.#signer.cached(value) ?? (await this.#signer.verify(value))
      if (!verified) continue
      // A signed id: the store decides whether it is still a session. A client never chooses its id, so a
      // missing or expired record gives a fresh session with a new id.
      const store = this.#store
      const pending = this.#call(env, 'read', (ctx) => store.get(verified.key, ctx))
      const record = pending instanceof Promise ? await pending : pending
      const now = this.now()
      if (!record || !this.isLive(record.meta, now)) break
      origin.key = verified.key
      origin.rotated = verified.rotated
      origin.signed = verified.rotated ? null : value
      return this.wrap(loadedState(verified.id, record.data, record.meta, origin))
    }
    return this.fresh(origin, this.now())
  }

  async commit(session: Session<Data>, response: Response): Promise<Response> {
    const state = session[STATE]
    const origin = state.origin
    const name = this.options.cookie.name
    const now = this.now()
    const setCookies: string[] = []

    if (state.destroyed) {
      if (origin.key !== null) {
        const key = origin.key
        await this.#call(origin.env, 'delete', (ctx) => this.#store.delete(key, ctx))
        origin.key = null
      }
      if (origin.cookies.includes(name)) setCookies.push(this.clearCookie(name, origin.url))
      origin.cookies = []
      return appendSetCookies(response, setCookies)
    }

    const renewed = state.previousId !== null
    if (renewed || (state.isNew && hasData(state))) {
      // A whole record under a new id: a new session, or a regenerated one replacing its old record.
      const meta = this.metaAt(state, now)
      const record = { data: { ...state.data }, meta }
      const [key, value] = await this.#keyAndCookie(state.id)
      const replaces = origin.key ?? undefined
      const written = await this.#call(origin.env, 'write', (ctx) =>
        this.#store.set(key, record, this.#ttl(meta, now), ctx, replaces),
      )
      if (!written) return this.#ended(session, response)
      this.#settle(state, key, value, meta)
      setCookies.push(this.cookie(name, value, meta.expiresAt - now, origin.url))
    } else if (!state.isNew) {
      const key = origin.key as string
      const changed = state.changes.size > 0 || state.flashChanged
      if (changed || this.touchDue(state, now)) {
        const meta = this.metaAt(state, now)
        const ttl = this.#ttl(meta, now)
        const store = this.#store
        const ok = await this.#call(origin.env, 'write', (ctx) =>
          changed || !store.touch
            ? store.patch(key, patchOf(state, meta), ttl, ctx)
            : store.touch(key, timesOf(meta), ttl, ctx),
        )
        if (!ok) return this.#ended(session, response)
        const value = origin.signed ?? (await this.#signer.sign(state.id, key))
        this.#settle(state, key, value, meta)
        // The deadline moved: send the cookie again so its Max-Age follows.
        setCookies.push(this.cookie(name, value, meta.expiresAt - now, origin.url))
      } else if (origin.rotated) {
        const value = await this.#signer.sign(state.id, key)
        this.#settle(state, key, value, state.meta)
        setCookies.push(this.cookie(name, value, state.meta.expiresAt - now, origin.url))
      }
    } else if (origin.cookies.includes(name)) {
      // A stale or forged cookie and nothing to keep: clear it, so it is not checked again on every request.
      setCookies.push(this.clearCookie(name, origin.url))
      origin.cookies = []
    }
    return appendSetCookies(response, setCookies)
  }

  async count(env?: unknown): Promise<number> {
    const store = this.#store
    if (!store.count)
      throw new SessionError('ERR_UNSUPPORTED', `The ${store.name} store cannot count sessions`)
    const count = store.count.bind(store)
    return await this.#call(env, 'count', (ctx) => count(ctx))
  }

  /** The storage key and the signed cookie value of a new id: two independent Web Crypto calls, run together. */
  #keyAndCookie(id: string): Promise<[string, string]> {
    const key = hashKey(id)
    return Promise.all([key, this.#signer.sign(id, key)])
  }

  #ttl(meta: SessionMeta, now: number): number {
    return Math.max(meta.expiresAt - now, this.#store.minTtl ?? 1)
  }

  /** After a successful write: the session is now the stored one. */
  #settle(state: SessionState, key: string, signed: string, meta: SessionMeta): void {
    state.origin.key = key
    state.origin.signed = signed
    this.settled(state, [this.options.cookie.name], meta)
  }

  /**
   * The record vanished between load and commit (destroyed or regenerated by a concurrent request, or expired): a
   * write must not bring it back, so the session ends. Its cookie is left alone: the request that destroyed the
   * record clears it, and the one that regenerated it sends the new cookie, which a clearing sent from here could
   * overwrite in the browser, ending the session it moved to. A stale cookie opens nothing anyway.
   */
  #ended(session: Session<Data>, response: Response): Response {
    const state = session[STATE]
    session.destroy()
    state.origin.key = null
    state.origin.cookies = []
    return response
  }

  /** A store call with the timeout applied and every failure turned into `ERR_STORE`. */
  #call<T>(env: unknown, operation: string, run: (ctx: StoreContext) => T | Promise<T>): T | Promise<T> {
    return callStore(this.#store, this.options.storeTimeout, env, operation, run)
  }
}

class CookieSessions<Data extends object> extends BaseSessions<Data> {
  readonly #store: CookieStore
  readonly #sealer: Sealer
  /**
   * Cookie value → its unsealed session: a cookie already unsealed by this instance is not unsealed again. A seal
   * ends with its MAC (iron's `*<salt>*<mac>`).
   */
  readonly #unsealed = new CookieValueCache<{ session: SealedSession; rotated: boolean }>(1000, -16)

  constructor(options: ResolvedSessionsOptions, store: CookieStore, secrets: readonly string[]) {
    super(options, 0)
    this.#store = store
    this.#sealer = store.createSealer(secrets)
  }

  async load(request: Request, env?: unknown): Promise<Session<Data>> {
    const origin = this.origin(request, env)
    const name = this.options.cookie.name
    const cookies = readCookies(request.headers.get('cookie'), name)
    const now = this.now()
    if (cookies.length === 0) return this.fresh(origin, now)
    origin.cookies = cookieNames(cookies)
    const value = joinCookieValue(name, cookies, this.#store.maxChunks)
    if (value === null) return this.fresh(origin, now)
    let opened = this.#unsealed.get(value)
    if (!opened) {
      opened = (await this.#sealer.unseal(value)) ?? undefined
      if (!opened) return this.fresh(origin, now)
      this.#unsealed.set(value, opened)
    }
    const sealed = opened.session
    if (!this.isLive(sealed.meta, now)) return this.fresh(origin, now)
    origin.rotated = opened.rotated
    return this.wrap(loadedState(sealed.id, sealed.data, sealed.meta, origin))
  }

  async commit(session: Session<Data>, response: Response): Promise<Response> {
    const state = session[STATE]
    const origin = state.origin
    const now = this.now()

    if (state.destroyed || (state.isNew && !hasData(state))) {
      // Nothing to keep: clear whatever session cookies the request carried.
      const cleared = origin.cookies.map((name) => this.clearCookie(name, origin.url))
      origin.cookies = []
      return appendSetCookies(response, cleared)
    }
    const renewed = state.isNew || state.previousId !== null
    const changed = state.changes.size > 0 || state.flashChanged
    if (!renewed && !changed && !origin.rotated && !this.touchDue(state, now)) return response

    const meta = this.metaAt(state, now)
    const sealed: SealedSession = { id: state.id, data: { ...state.data }, meta }
    const value = await this.#sealer.seal(sealed)
    const name = this.options.cookie.name
    const chunks = splitCookieValue(name, value, this.#store.maxChunks)
    if (!chunks) {
      throw new SessionError(
        'ERR_TOO_LARGE',
        `The sealed session is ${value.length} bytes: more than ${this.#store.maxChunks} cookies of 4096 bytes can hold`,
      )
    }
    this.#unsealed.set(value, { session: sealed, rotated: false })
    const maxAge = meta.expiresAt - now
    const setCookies = chunks.map(([chunk, part]) => this.cookie(chunk, part, maxAge, origin.url))
    const written = new Set(chunks.map(([chunk]) => chunk))
    // Stale chunks of a previous, longer cookie would corrupt the next read: clear them.
    for (const stale of origin.cookies)
      if (!written.has(stale)) setCookies.push(this.clearCookie(stale, origin.url))
    this.settled(state, [...written], meta)
    return appendSetCookies(response, setCookies)
  }

  async count(): Promise<number> {
    throw new SessionError(
      'ERR_UNSUPPORTED',
      'Sessions sealed in cookies cannot be counted: the server keeps no record of them',
    )
  }
}

/** A store call's context, whose AbortSignal is made only when the store reads it. */
class CallContext implements StoreContext {
  readonly env: unknown
  #controller: AbortController | undefined

  constructor(env: unknown) {
    this.env = env
  }

  get signal(): AbortSignal {
    this.#controller ??= new AbortController()
    return this.#controller.signal
  }

  abort(reason: unknown): void {
    this.#controller ??= new AbortController()
    this.#controller.abort(reason)
  }
}

/**
 * Runs a store call under `timeoutMs`, aborting its signal when time runs out. Every failure becomes
 * `SessionError('ERR_STORE')` with the original error as `cause`; a store's own `SessionError` passes through.
 *
 * A plain answer (a store that has it at once, such as memory) is handed back as it is: no timer, no await.
 * Only a pending promise is raced against the timeout. The signal is made only when the store reads it:
 * creating an AbortSignal costs more than a whole request to the memory store on Node 20.
 */
export function callStore<T>(
  store: ServerStore,
  timeoutMs: number,
  env: unknown,
  operation: string,
  run: (ctx: StoreContext) => T | Promise<T>,
): T | Promise<T> {
  const ctx = new CallContext(env)
  let answer: T | Promise<T>
  try {
    answer = run(ctx)
  } catch (error) {
    return Promise.reject(storeError(store, operation, error))
  }
  return answer instanceof Promise ? withTimeout(store, timeoutMs, ctx, operation, answer) : answer
}

async function withTimeout<T>(
  store: ServerStore,
  timeoutMs: number,
  ctx: CallContext,
  operation: string,
  pending: Promise<T>,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    // Also keeps a late failure, after the timeout won, from surfacing as an unhandled rejection.
    let outcome = 'pending' as 'pending' | 'fulfilled' | 'rejected'
    let result: unknown
    pending.then(
      (value) => {
        outcome = 'fulfilled'
        result = value
      },
      (error: unknown) => {
        outcome = 'rejected'
        result = error
      },
    )
    // A settled promise's reaction was queued before this await's continuation, so it has run by now: a call
    // that settled at once (an async function that never waited) needs no timer.
    await undefined
    if (outcome === 'fulfilled') return result as T
    if (outcome === 'rejected') throw result
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new SessionError(
          'ERR_STORE',
          `The ${store.name} session store did not ${operation} within ${timeoutMs} ms`,
        )
        ctx.abort(error)
        reject(error)
      }, timeoutMs)
    })
    return await Promise.race([pending, timeout])
  } catch (error) {
    throw storeError(store, operation, error)
  } finally {
    if (timer !== undefined) clearTimeout(timer)
  }
}

/** `error` as `SessionError('ERR_STORE')`, the original as its cause; a store's own `SessionError` as it is. */
function storeError(store: ServerStore, operation: string, error: unknown): SessionError {
  if (isSessionError(error)) return error
  const reason = error instanceof Error ? error.message : String(error)
  return new SessionError('ERR_STORE', `The ${store.name} session store failed to ${operation}: ${reason}`, {
    cause: error,
  })
}

/** The changed keys, and which of the set ones are flash values: a change set, never a whole list. */
function patchOf(state: SessionState, meta: SessionMeta): RecordPatch {
  const patch: RecordPatch = { set: Object.create(null), delete: [], flash: [], meta: timesOf(meta) }
  for (const [key, isSet] of state.changes) {
    if (isSet) {
      patch.set[key] = state.data[key]
      if (state.flash.has(key)) patch.flash.push(key)
    } else patch.delete.push(key)
  }
  return patch
}

function timesOf(meta: SessionMeta): SessionTimes {
  return { createdAt: meta.createdAt, lastSeenAt: meta.lastSeenAt, expiresAt: meta.expiresAt }
}

function cookieNames(cookies: ReadonlyArray<readonly [string, string]>): string[] {
  const names: string[] = []
  for (let i = 0; i < cookies.length; i++) names.push((cookies[i] as readonly [string, string])[0])
  return names
}

function hasData(state: SessionState): boolean {
  for (const _ in state.data) return true
  return false
}

/** Adds `Set-Cookie` headers, copying the response first when its headers are immutable (a fetched response). */
function appendSetCookies(response: Response, cookies: string[]): Response {
  if (cookies.length === 0) return response
  try {
    for (const cookie of cookies) response.headers.append('Set-Cookie', cookie)
    return response
  } catch {
    const copy = new Response(response.body, response)
    for (const cookie of cookies) copy.headers.append('Set-Cookie', cookie)
    return copy
  }
}

/**
 * The last origin (everything before the path) `isLocalHttp` judged, and its answer. A development server sees
 * one origin, and parsing a URL on every response cost a few µs in a real server.
 */
let judgedOrigin = ''
let judgedLocal = false

/** Plain http to the local machine: the one case where a browser may drop a `Secure` cookie. */
function isLocalHttp(url: string): boolean {
  if (!url.startsWith('http:')) return false
  // The host lies before the first '/' after the scheme's "//": that prefix decides the answer.
  const slash = url.indexOf('/', 'http://'.length)
  const origin = slash === -1 ? url : url.slice(0, slash)
  if (origin === judgedOrigin) return judgedLocal
  let local = false
  try {
    const host = new URL(url).hostname
    local = host === 'localhost' || host === '127.0.0.1' || host === '[::1]' || host.endsWith('.localhost')
  } catch {
    local = false
  }
  judgedOrigin = origin
  judgedLocal = local
  return local
}

function secretsOf(options: SessionsOptions): readonly string[] {
  return typeof options.secrets === 'string' ? [options.secrets] : [...options.secrets]
}

function configError(message: string): SessionError {
  return new SessionError('ERR_CONFIG', message)
}

function positiveSeconds(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw configError(`${name} must be a positive number of seconds, got ${String(value)}`)
  }
  return value
}

function resolveOptions(options: SessionsOptions): ResolvedSessionsOptions & { now: () => number } {
  if (typeof options !== 'object' || options === null)
    throw configError('createSessions() needs an options object')
  const store = options.store as SessionStore | undefined
  if (!store || (store.kind !== 'server' && store.kind !== 'cookie')) {
    throw configError('options.store must be a session store, such as memoryStore() or cookieStore()')
  }
  const secrets = typeof options.secrets === 'string' ? [options.secrets] : options.secrets
  if (!Array.isArray(secrets) || secrets.length === 0) {
    throw configError('options.secrets must be a secret string or a non-empty array of them')
  }
  secrets.forEach((secret: unknown, i: number) => {
    if (typeof secret !== 'string' || secret.length < 32) {
      throw configError(`options.secrets[${i}] must be a string of at least 32 characters`)
    }
  })

  const idleTimeout = positiveSeconds(options.idleTimeout, 'idleTimeout', DEFAULTS.idleTimeout)
  const absoluteTimeout = positiveSeconds(
    options.absoluteTimeout,
    'absoluteTimeout',
    DEFAULTS.absoluteTimeout,
  )
  let touchInterval: number = DEFAULTS.touchInterval
  if (options.touchInterval !== undefined) {
    const value = options.touchInterval
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw configError(`touchInterval must be zero or a positive number of seconds, got ${String(value)}`)
    }
    touchInterval = value
  }
  if (touchInterval >= idleTimeout) {
    throw configError(
      `touchInterval (${touchInterval} s) must be shorter than idleTimeout (${idleTimeout} s), or sessions would expire before their deadline is ever extended`,
    )
  }
  const storeTimeout = options.storeTimeout ?? DEFAULTS.storeTimeout
  if (typeof storeTimeout !== 'number' || !Number.isFinite(storeTimeout) || storeTimeout <= 0) {
    throw configError(`storeTimeout must be a positive number of milliseconds, got ${String(storeTimeout)}`)
  }
  const now = options.now ?? Date.now
  if (typeof now !== 'function')
    throw configError('options.now must be a function returning ms since the epoch')

  const c = options.cookie ?? {}
  const cookie = {
    name: c.name ?? 'sid',
    path: c.path ?? '/',
    domain: c.domain,
    sameSite: c.sameSite ?? 'Lax',
    secure: c.secure ?? true,
    httpOnly: c.httpOnly ?? true,
    partitioned: c.partitioned ?? false,
  } as const
  if (!isCookieName(cookie.name))
    throw configError(`cookie.name ${JSON.stringify(cookie.name)} is not a valid name`)
  if (!isAttributeValue(cookie.path) || !cookie.path.startsWith('/')) {
    throw configError('cookie.path must start with "/" and hold no ";" or control characters')
  }
  if (cookie.domain !== undefined && (!cookie.domain || !isAttributeValue(cookie.domain))) {
    throw configError('cookie.domain must be a non-empty host name')
  }
  if (!['Strict', 'Lax', 'None'].includes(cookie.sameSite)) {
    throw configError(`cookie.sameSite must be 'Strict', 'Lax' or 'None'`)
  }
  if (cookie.secure !== true && cookie.secure !== false && cookie.secure !== 'auto') {
    throw configError(`cookie.secure must be true, false or 'auto'`)
  }
  // RFC 6265bis §4.1.3: browsers reject prefixed cookies that break these rules, so refuse them now.
  const prefixed = cookie.name.startsWith('__Host-') || cookie.name.startsWith('__Secure-')
  let secure: boolean | 'auto' = cookie.secure
  if (prefixed || cookie.sameSite === 'None' || cookie.partitioned) {
    if (secure === false) {
      throw configError(
        `cookie.secure cannot be false with ${prefixed ? `the name ${cookie.name}` : cookie.partitioned ? 'partitioned' : "sameSite 'None'"}: browsers require Secure`,
      )
    }
    secure = true
  }
  if (cookie.name.startsWith('__Host-') && (cookie.path !== '/' || cookie.domain !== undefined)) {
    throw configError('A __Host- cookie must have path "/" and no domain')
  }

  const resolved = {
    store,
    cookie: Object.freeze({ ...cookie, secure }),
    idleTimeout,
    absoluteTimeout,
    touchInterval,
    storeTimeout,
    now,
  }
  if (store.kind === 'server') store.validate?.({ idleTimeout, absoluteTimeout, touchInterval })
  return Object.freeze(resolved)
}
