/** @module The one error type the library throws, with a stable `code` to switch on. */

/**
 * - `ERR_CONFIG`: invalid options, thrown by the factory that received them.
 * - `ERR_STORE`: the store failed or answered slower than `storeTimeout`; `cause` holds the original error.
 * - `ERR_DESTROYED`: a write to a session after `destroy()`.
 * - `ERR_SERIALIZE`: a value that is not plain JSON data.
 * - `ERR_TOO_LARGE`: a session too large for where it is kept: the cookies a browser keeps (sealed sessions), or
 *   a store's value limit (Deno KV: 64 KiB).
 * - `ERR_UNSUPPORTED`: an operation the store cannot perform (counting sealed cookies).
 */
export type SessionErrorCode =
  | 'ERR_CONFIG'
  | 'ERR_STORE'
  | 'ERR_DESTROYED'
  | 'ERR_SERIALIZE'
  | 'ERR_TOO_LARGE'
  | 'ERR_UNSUPPORTED'

export class SessionError extends Error {
  readonly code: SessionErrorCode

  constructor(code: SessionErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'SessionError'
    this.code = code
  }
}

/**
 * True when `error` is a {@link SessionError}, optionally with the given code; with a code, `error.code` is
 * narrowed to it.
 *
 * @example
 * ```ts
 * if (isSessionError(error, 'ERR_STORE')) return new Response('Try again', { status: 503 })
 * ```
 */
export function isSessionError<C extends SessionErrorCode = SessionErrorCode>(
  error: unknown,
  code?: C,
): error is SessionError & { readonly code: C } {
  return error instanceof SessionError && (code === undefined || error.code === code)
}
