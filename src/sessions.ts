/**
 * @module createSessions() and the Sessions interface: finds the session of a Request, and writes it back with
 * the Response.
 */

import { CookieSessions } from './cookie-sessions.ts'
import {
  type ResolvedSessionsOptions,
  resolveOptions,
  resolveSecrets,
  type SessionsOptions,
} from './options.ts'
import { type LoadOptions, ServerSessions } from './server-sessions.ts'
import type { Session } from './session.ts'
import type { ServerStore, SessionData } from './store.ts'

import type { UserSession } from './user-sessions.ts'

export type {
  CookieCacheOptions,
  CookieOptions,
  ResolvedSessionsOptions,
  SessionsOptions,
} from './options.ts'
export type { LoadOptions } from './server-sessions.ts'
export type { UserSession } from './user-sessions.ts'

export interface Sessions<Data extends object = SessionData> {
  readonly options: ResolvedSessionsOptions
  /**
   * The session of `request`: the stored one its cookie names, or a fresh empty one when there is none, or the
   * cookie is forged, tampered with, or expired. Rejects only when the store fails (`ERR_STORE`).
   * @param env The Workers bindings, for stores that take their namespace from them.
   * @param options `{ fresh: true }`: ignore the cookie cache and read the store (sensitive routes).
   */
  load(request: Request, env?: unknown, options?: LoadOptions): Promise<Session<Data>>
  /**
   * Persists what changed and adds the `Set-Cookie` headers the session needs to `response` (or to a copy,
   * when its headers are immutable). Rejects with `ERR_STORE` (no cookie added) when the store fails, and
   * `ERR_TOO_LARGE` when a sealed cookie would not fit.
   */
  commit(session: Session<Data>, response: Response): Promise<Response>
  /** Live sessions, where the store can count them; rejects with `ERR_UNSUPPORTED` where it cannot. */
  count(env?: unknown): Promise<number>
  /**
   * The user's live sessions (bound with `setUser`), most recently seen first: handle, times, User-Agent and
   * label. Nothing in the list opens a session. Rejects with `ERR_UNSUPPORTED` on the cookie store.
   */
  listUserSessions(userId: string, env?: unknown): Promise<UserSession[]>
  /** Ends the user's session named by `handle` (its next request gets a fresh session); false when none. */
  revokeUserSession(userId: string, handle: string, env?: unknown): Promise<boolean>
  /** Ends every session of the user ("log out everywhere"), but the one `except` names; resolves how many. */
  revokeUserSessions(userId: string, options?: { except?: string }, env?: unknown): Promise<number>
  /** Distinct users with at least one live session ("users online"). */
  countUsers(env?: unknown): Promise<number>
}

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
  const secrets = resolveSecrets(options.secrets)
  const store = resolved.store
  return store.kind === 'cookie'
    ? new CookieSessions<Data>(resolved, store, secrets)
    : new ServerSessions<Data>(resolved, store as ServerStore, secrets)
}
