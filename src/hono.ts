/** @module session(): the Hono middleware. Loads the session before the handler, commits it after. */

import type { Context, Env, MiddlewareHandler } from 'hono'
import { HTTPException } from 'hono/http-exception'
import { isSessionError } from './errors.ts'
import { type Session, STATE } from './session.ts'
import { createSessions, type LoadOptions, type Sessions, type SessionsOptions } from './sessions.ts'
import type { SessionData } from './store.ts'

/** Hono environment for typed `c.get('session')`: `new Hono<SessionEnv<MyData>>()`. */
export interface SessionEnv<Data extends object = SessionData> {
  Variables: { session: Session<Data> }
}

/**
 * Hono middleware: `c.get('session')` in handlers, persisted and cookied after them. The Workers bindings
 * (`c.env`) reach the store, for stores that take their namespace from them.
 *
 * Whatever Response the handler returns (a fetched one with immutable headers, a redirect, a stream), the
 * session's `Set-Cookie` is added to it, and the cookies it carries stay, each once.
 *
 * A failed request commits nothing: when the handler (or a later middleware) throws, the session's changes, a
 * `regenerate()` or `destroy()` included, are dropped; the store and the browser's cookie stay as they were and
 * the error page gets no session cookie. An `HTTPException` below 500 (a 401, a redirect) is an answer, not a
 * failure: it commits as usual.
 *
 * A store failure (down, erroring, slower than `storeTimeout`) becomes a 503 `HTTPException` whose `cause` is the
 * `SessionError`, and the response carries no session cookie.
 *
 * With `{ fresh: true }` the session is read from the store, never from the cookie cache (`cookieCache`): for a
 * sensitive route or group, where a revocation made elsewhere must be seen at once. Nested in the app-wide
 * `session(sessions)`, it reads the store only if that one took the session from the cache; either way the
 * session is loaded and committed once per request.
 *
 * @param sessionsOrOptions The result of `createSessions()`, or its options.
 * @param options `fresh`: ignore the cookie cache on the routes this middleware serves.
 * @typeParam E The app's Hono env, when it has bindings or variables of its own besides the session.
 * @example
 * ```ts
 * const app = new Hono<SessionEnv<{ count?: number }>>()
 * app.use(session({ store: memoryStore(), secrets: env.SESSION_SECRET }))
 * app.get('/', (c) => {
 *   const s = c.get('session')
 *   s.set('count', (s.get('count') ?? 0) + 1)
 *   return c.text(String(s.get('count')))
 * })
 * ```
 * @see {@link createSessions} for the options.
 */
export function session<Data extends object = SessionData, E extends Env = SessionEnv<Data>>(
  sessionsOrOptions: Sessions<Data> | SessionsOptions,
  options?: LoadOptions,
): MiddlewareHandler<E> {
  const load = options?.fresh === true ? { fresh: true } : undefined
  const sessions = isSessions<Data>(sessionsOrOptions)
    ? sessionsOrOptions
    : createSessions<Data>(sessionsOrOptions)
  async function loadSession(c: Context<SessionEnv<Data>>): Promise<Session<Data>> {
    let loaded: Session<Data>
    try {
      loaded = await sessions.load(c.req.raw, c.env, load)
    } catch (error) {
      throw unavailable(error)
    }
    loadedBy.set(loaded, sessions)
    return loaded
  }
  return async function session(context, next) {
    // E extends the app's own Env (bindings, other variables); the session variable is ours to set.
    const c = context as unknown as Context<SessionEnv<Data>>
    const outer = c.get('session') as Session<Data> | undefined
    if (outer !== undefined && loadedBy.get(outer) === sessions) {
      // Nested in a middleware of the same sessions (app-wide, then `{ fresh: true }` on a group): that one
      // loaded the session and commits it. Loading and committing again would write and set cookies twice.
      // Fresh here and loaded from the cache there: read the store now, and the outer commits this load.
      if (load && fromCache(outer) && !changed(outer)) c.set('session', await loadSession(c))
      return next()
    }
    const current = await loadSession(c)
    c.set('session', current)
    await next()
    // Hono catches what the handler threw, sets c.error and renders onError's answer: nothing to commit.
    if (c.error && !isAnswer(c.error)) return
    // A nested fresh middleware may have loaded it again: commit the session the handlers saw.
    const latest = c.get('session') as Session<Data> | undefined
    const handled = latest !== undefined && loadedBy.get(latest) === sessions ? latest : current
    let committed: Response
    try {
      committed = await sessions.commit(handled, c.res)
    } catch (error) {
      throw unavailable(error)
    }
    if (committed !== c.res) {
      // A copy (the response's headers were immutable). Hono's c.res setter would copy the old response's
      // Set-Cookie over the copy's, dropping the session's: unset it first, so the copy is taken as it is.
      c.res = undefined
      c.res = committed
    }
  }
}

/** Which sessions loaded a session: a nested middleware of the same sessions neither loads nor commits again. */
const loadedBy = new WeakMap<object, object>()

/** The session was loaded from the cookie cache, not the store. */
function fromCache(session: Session<object>): boolean {
  return (session[STATE].binding.cache?.view ?? null) !== null
}

/** The session was changed (or regenerated, destroyed) before this middleware ran. */
function changed(session: Session<object>): boolean {
  const state = session[STATE]
  return state.phase !== 'stored' || state.changes.size > 0
}

/** An HTTPException below 500 is a deliberate answer (a redirect, a 401). Duck-typed, as Hono's own handler does. */
function isAnswer(error: Error): boolean {
  const status = (error as Partial<HTTPException>).status
  return 'getResponse' in error && typeof status === 'number' && status < 500
}

function isSessions<Data extends object>(value: Sessions<Data> | SessionsOptions): value is Sessions<Data> {
  return (
    typeof (value as Sessions<Data>).load === 'function' &&
    typeof (value as Sessions<Data>).commit === 'function'
  )
}

/** A store failure is the server's trouble, not the client's: 503, with the SessionError as the cause. */
function unavailable(error: unknown): unknown {
  if (!isSessionError(error, 'ERR_STORE')) return error
  return new HTTPException(503, { message: 'Session store unavailable', cause: error })
}
