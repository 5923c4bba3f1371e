/** @module edge-session: sessions for Request/Response on every web-standard runtime. */

export type { CookieAttributes, SameSite } from './cookie.ts'
export { isSessionError, SessionError, type SessionErrorCode } from './errors.ts'
export { type RegenerateOptions, Session, type SetUserOptions } from './session.ts'
export {
  type CookieCacheOptions,
  type CookieOptions,
  createSessions,
  type LoadOptions,
  type ResolvedSessionsOptions,
  type Sessions,
  type SessionsOptions,
  type UserSession,
} from './sessions.ts'
export type {
  Awaitable,
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
  SessionUser,
  StoreContext,
  StoreTimingOptions,
  UserEntry,
  WriteAnswer,
} from './store.ts'
export { applyPatch } from './stores/shared.ts'
