/** @module session(): the Hono middleware. Loads the session before the handler, commits it after. */

import type { Context, Env, MiddlewareHandler } from 'hono'
import { HTTPException } from 'hono/http-exception'
import { isSessionError } from './errors.ts'
import type { Session } from './session.ts'
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
 * sensitive route or group, where a revocation made elsewhere must be seen at once. Mount it on those routes
 * instead of the app-wide middleware, not in addition to it (each would load and commit the session).
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
  return async function session(context, next) {
    // E extends the app's own Env (bindings, other variables); the session variable is ours to set.
    const c = context as unknown as Context<SessionEnv<Data>>
    let current: Session<Data>
    try {
      current = await sessions.load(c.req.raw, c.env, load)
    } catch (error) {
      throw unavailable(error)
    }
    c.set('session', current)
    await next()
    // Hono catches what the handler threw, sets c.error and renders onError's answer: nothing to commit.
    if (c.error && !isAnswer(c.error)) return
    let committed: Response
    try {
      committed = await sessions.commit(current, c.res)
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
