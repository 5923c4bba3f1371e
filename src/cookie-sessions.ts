/**
 * @module Sessions sealed into the cookie: the whole session travels encrypted and authenticated with every
 * request, split into a few cookies when large. No server record, so nothing to revoke a copy with.
 */

import {
  cookieValueCandidates,
  MAX_COOKIE_CANDIDATES,
  ownCookieNames,
  readCookies,
  splitCookieValue,
} from './cookie.ts'
import { CookieValueCache, createSessionId } from './crypto.ts'
import { SessionError } from './errors.ts'
import { Lifetimes } from './lifetimes.ts'
import type { ResolvedSessionsOptions } from './options.ts'
import {
  createState,
  hasData,
  Session,
  type SessionBinding,
  type SessionState,
  STATE,
  settle,
} from './session.ts'
import { appendSetCookies, SetCookieWriter } from './set-cookie.ts'
import type { CookieStore, SealedSession, Sealer } from './store.ts'
import { hashUserId, requestInfo, type UserSession } from './user-sessions.ts'

type Unsealed = { session: SealedSession; rotated: boolean }

export class CookieSessions<Data extends object> {
  readonly options: ResolvedSessionsOptions
  readonly #store: CookieStore
  readonly #sealer: Sealer
  readonly #lifetimes: Lifetimes
  readonly #cookies: SetCookieWriter
  /**
   * Cookie value → its unsealed session: a cookie already unsealed by this instance is not unsealed again. A seal
   * ends with its MAC (iron's `*<salt>*<mac>`).
   */
  readonly #unsealed = new CookieValueCache<Unsealed>(1000, -16)

  constructor(options: ResolvedSessionsOptions, store: CookieStore, secrets: readonly string[]) {
    this.options = options
    this.#store = store
    this.#sealer = store.createSealer(secrets)
    this.#lifetimes = new Lifetimes(options, 0)
    this.#cookies = new SetCookieWriter(options.cookie)
  }

  async load(request: Request, env?: unknown): Promise<Session<Data>> {
    const info = requestInfo(request, env)
    const name = this.options.cookie.name
    const maxChunks = this.#store.maxChunks
    const cookies = readCookies(request.headers.get('cookie'), name)
    const binding: SessionBinding = {
      key: null,
      rotated: false,
      signed: null,
      cookies: ownCookieNames(name, cookies, maxChunks),
      user: undefined,
    }
    const now = this.#lifetimes.now()
    let tried = 0
    for (const value of cookieValueCandidates(name, cookies, maxChunks)) {
      let opened = this.#unsealed.get(value)
      if (!opened) {
        if (this.#sealer.isWellFormed && !this.#sealer.isWellFormed(value)) continue
        if (++tried > MAX_COOKIE_CANDIDATES) break
        opened = (await this.#sealer.unseal(value)) ?? undefined
        if (!opened) continue
        this.#unsealed.set(value, opened)
      }
      const sealed = opened.session
      if (!this.#lifetimes.isLive(sealed.meta, now)) continue
      binding.rotated = opened.rotated
      return this.#wrap(createState(sealed.id, sealed.meta, info, binding, sealed.data))
    }
    return this.#wrap(createState(createSessionId(), this.#lifetimes.start(now), info, binding))
  }

  async commit(session: Session<Data>, response: Response): Promise<Response> {
    const state = session[STATE]
    const { binding, request } = state
    const now = this.#lifetimes.now()

    if (
      state.phase === 'destroyed' ||
      (state.phase === 'unsaved' && !hasData(state) && state.user === null)
    ) {
      // Nothing to keep: clear whatever session cookies of ours the request carried, each once.
      const cleared = binding.cookies.map((name) => this.#cookies.clear(name, request.url))
      binding.cookies = []
      return appendSetCookies(response, cleared)
    }
    const written = state.phase !== 'stored'
    if (!written && state.changes.size === 0 && !binding.rotated && !this.#lifetimes.touchDue(state, now))
      return response

    const user = state.user
    if (user && user.key === null) user.key = await hashUserId(user.id)
    const meta = this.#lifetimes.written(state, now)
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
    const setCookies = chunks.map(([chunk, part]) => this.#cookies.cookie(chunk, part, maxAge, request.url))
    const names = chunks.map(([chunk]) => chunk)
    // Our own cookies this write did not replace (a previous, longer cookie's chunks; a stray chunk) would
    // corrupt the next read: clear them.
    for (const stale of binding.cookies)
      if (!names.includes(stale)) setCookies.push(this.#cookies.clear(stale, request.url))
    settle(state, meta, names)
    return appendSetCookies(response, setCookies)
  }

  async count(): Promise<number> {
    throw unsupported('counted')
  }

  async listUserSessions(): Promise<UserSession[]> {
    throw unsupported('listed per user')
  }

  async revokeUserSession(): Promise<boolean> {
    throw unsupported('revoked')
  }

  async revokeUserSessions(): Promise<number> {
    throw unsupported('revoked')
  }

  async countUsers(): Promise<number> {
    throw unsupported('counted per user')
  }

  #wrap(state: SessionState): Session<Data> {
    return new Session<Data>(state, createSessionId)
  }
}

function unsupported(what: string): SessionError {
  return new SessionError(
    'ERR_UNSUPPORTED',
    `Sessions sealed in cookies cannot be ${what}: the server keeps no record of them`,
  )
}
