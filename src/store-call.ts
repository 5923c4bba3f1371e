/**
 * @module One store call: a plain answer taken at once, a pending one raced against `storeTimeout`, and every
 * failure turned into `SessionError('ERR_STORE')`.
 */

import { isSessionError, SessionError } from './errors.ts'
import type { ServerStore, StoreContext, UserEntry } from './store.ts'

/** The user-index entries a call concerns (see `StoreContext`). */
export interface CallEntries {
  user?: UserEntry | undefined
  replacedUser?: UserEntry | undefined
  /** See `StoreContext.returnRecord`. */
  returnRecord?: boolean
}

/** A store call's context, whose AbortSignal is made only when the store reads it. */
class CallContext implements StoreContext {
  readonly env: unknown
  readonly user?: UserEntry
  readonly replacedUser?: UserEntry
  readonly returnRecord?: boolean
  #controller: AbortController | undefined

  constructor(env: unknown, entries: CallEntries | undefined) {
    this.env = env
    if (entries?.user) this.user = entries.user
    if (entries?.replacedUser) this.replacedUser = entries.replacedUser
    if (entries?.returnRecord) this.returnRecord = true
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
  entries?: CallEntries,
): T | Promise<T> {
  const ctx = new CallContext(env, entries)
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
