/**
 * @module Sessions per user, for server stores: list a user's devices, revoke one or all, count users online,
 * and keep at most `maxSessionsPerUser` at login. The store keeps the per-user index; this judges liveness on
 * the sessions' clock, as `load` does.
 */

import { hashKey } from './crypto.ts'
import { SessionError } from './errors.ts'
import type { Lifetimes } from './lifetimes.ts'
import type { ResolvedSessionsOptions } from './options.ts'
import { MAX_AGENT, type RequestInfo } from './session.ts'
import type { ServerStore, SessionRecord, SessionUser, StoreContext } from './store.ts'
import { callStore } from './store-call.ts'

/** One live session of a user, as `listUserSessions` shows it. Nothing in it opens the session. */
export interface UserSession {
  /** Opaque and stable for the session's current id: what `revokeUserSession` takes. Safe to render. */
  handle: string
  /** Start of the session's absolute lifetime (its login), ms since the epoch. */
  createdAt: number
  /** Its last activity the store knows of (writes and touches), ms since the epoch. */
  lastSeenAt: number
  /** When it ends unless extended by activity, ms since the epoch. */
  expiresAt: number
  /** The User-Agent of the request that logged it in (first 256 characters), or null. */
  userAgent: string | null
  /** The label given to `setUser`, or null. */
  label: string | null
}

/** What a sessions instance keeps of a request. */
export function requestInfo(request: Request, env: unknown): RequestInfo {
  const agent = request.headers.get('user-agent')
  return { url: request.url, env, agent: agent === null ? null : agent.slice(0, MAX_AGENT) }
}

/** The key a user's index is named by: a hash, so user ids never appear in key names (pseudonymous only). */
export function hashUserId(userId: string): Promise<string> {
  return hashKey(`edge-session:user:${userId}`)
}

/** The handle of a record written before handles existed: derived from its key, so it is stable. */
export async function legacyHandle(key: string): Promise<string> {
  return (await hashKey(`edge-session:handle:${key}`)).slice(0, 22)
}

export class UserSessions {
  /** `maxSessionsPerUser`, when set. */
  readonly limit: number | undefined
  readonly #store: ServerStore
  readonly #timeout: number
  readonly #lifetimes: Lifetimes

  constructor(store: ServerStore, options: ResolvedSessionsOptions, lifetimes: Lifetimes) {
    this.#store = store
    this.#timeout = options.storeTimeout
    this.#lifetimes = lifetimes
    this.limit = options.maxSessionsPerUser
  }

  /** The user's live sessions, most recently seen first. Two round trips. */
  async list(userId: string, env: unknown): Promise<UserSession[]> {
    const user = await hashUserId(checkUserId(userId))
    const entries = await this.#entries(user, env)
    const records = await this.#records(
      entries.map((entry) => entry.key),
      env,
    )
    const now = this.#lifetimes.now()
    const sessions: UserSession[] = []
    records.forEach((record, i) => {
      if (!record || record.meta.user?.key !== user || !this.#lifetimes.isLive(record.meta, now)) return
      const { meta } = record
      sessions.push({
        handle: (entries[i] as { handle: string }).handle,
        createdAt: meta.createdAt,
        lastSeenAt: meta.lastSeenAt,
        expiresAt: meta.expiresAt,
        userAgent: meta.user?.agent ?? null,
        label: meta.user?.label ?? null,
      })
    })
    return sessions.sort((a, b) => b.lastSeenAt - a.lastSeenAt)
  }

  /** Ends the user's session named by `handle`; false when the user has no such session. Two round trips. */
  async revokeOne(userId: string, handle: string, env: unknown): Promise<boolean> {
    if (typeof handle !== 'string') throw new TypeError('revokeUserSession() needs a handle string')
    const user = await hashUserId(checkUserId(userId))
    const entries = await this.#entries(user, env)
    const keys = entries.filter((entry) => entry.handle === handle).map((entry) => entry.key)
    if (keys.length === 0) return false
    return (await this.#revoke(user, keys, env)) > 0
  }

  /** Ends every session of the user, but the one `except` names. Two round trips. */
  async revokeAll(userId: string, options: { except?: string }, env: unknown): Promise<number> {
    const except = options?.except
    if (except !== undefined && typeof except !== 'string')
      throw new TypeError('revokeUserSessions(): except must be a handle string')
    const user = await hashUserId(checkUserId(userId))
    const entries = await this.#entries(user, env)
    const keys = entries.filter((entry) => entry.handle !== except).map((entry) => entry.key)
    if (keys.length === 0) return 0
    return this.#revoke(user, keys, env)
  }

  /** Distinct users with at least one live session. One round trip. */
  async count(env: unknown): Promise<number> {
    const countUsers = this.#supported('countUsers').bind(this.#store)
    return await this.#call(env, 'count users', (ctx) => countUsers(ctx))
  }

  /**
   * After a login: revokes the user's least recently seen sessions beyond `maxSessionsPerUser`, never `current`.
   * One round trip when within the limit, three when over it.
   */
  async trim(user: SessionUser, current: string, env: unknown): Promise<void> {
    const limit = this.limit
    if (limit === undefined || !this.#store.userEntries || !this.#store.revokeUser) return
    const entries = await this.#entries(user.key, env)
    if (entries.length <= limit) return
    const others = entries.filter((entry) => entry.key !== current)
    const records = await this.#records(
      others.map((entry) => entry.key),
      env,
    )
    // Dead or missing records first, then the least recently seen.
    const seen = others.map((entry, i) => ({ key: entry.key, at: records[i]?.meta.lastSeenAt ?? -Infinity }))
    seen.sort((a, b) => a.at - b.at)
    const excess = seen.slice(0, entries.length - limit).map((entry) => entry.key)
    if (excess.length > 0) await this.#revoke(user.key, excess, env)
  }

  #entries(
    user: string,
    env: unknown,
  ): Promise<Array<{ key: string; handle: string }>> | Array<{ key: string; handle: string }> {
    const userEntries = this.#supported('userEntries').bind(this.#store)
    return this.#call(env, 'list user sessions', (ctx) => userEntries(user, ctx))
  }

  async #records(keys: string[], env: unknown): Promise<Array<SessionRecord | null>> {
    if (keys.length === 0) return []
    const store = this.#store
    const getMany = store.getMany?.bind(store)
    if (getMany) return await this.#call(env, 'read', (ctx) => getMany(keys, ctx))
    return Promise.all(keys.map((key) => this.#call(env, 'read', (ctx) => store.get(key, ctx))))
  }

  async #revoke(user: string, keys: string[], env: unknown): Promise<number> {
    const revokeUser = this.#supported('revokeUser').bind(this.#store)
    return await this.#call(env, 'revoke', (ctx) => revokeUser(user, keys, ctx))
  }

  #supported<M extends 'userEntries' | 'revokeUser' | 'countUsers'>(method: M): NonNullable<ServerStore[M]> {
    const implementation = this.#store[method]
    if (!implementation) {
      throw new SessionError('ERR_UNSUPPORTED', `The ${this.#store.name} store keeps no sessions per user`)
    }
    return implementation as NonNullable<ServerStore[M]>
  }

  #call<T>(env: unknown, operation: string, run: (ctx: StoreContext) => T | Promise<T>): T | Promise<T> {
    return callStore(this.#store, this.#timeout, env, operation, run)
  }
}

function checkUserId(userId: string): string {
  if (typeof userId !== 'string' || userId.length === 0 || userId.length > 1024)
    throw new TypeError('A user id is a string of 1 to 1024 characters')
  return userId
}
