/** @module @internal Redis client errors cleaned of the command they echo; NOSCRIPT told apart. */

/*
 * Errors. Clients put the command into their errors: @upstash/redis appends the request body (", command was:
 * [...]": the script, the keys, the values), ioredis hangs it on the error (`command.args`), Redis itself echoes
 * an unknown command's arguments, and a reply that does not parse is quoted. None of that may reach a
 * SessionError, its message or its cause. So the store throws a new error instead: the client's error class
 * (`name`), its message cut before any of those echoes, every argument sent scrubbed from what is left, its
 * `code` (ECONNREFUSED...), and its cause cleaned the same way. Nothing else of the original is kept.
 */
const ECHOES = ['command was:', 'with args beginning with', 'response body:']
/** Shorter arguments (a TTL, `j1`) are not scrubbed: they would mangle words and name nothing. */
const SCRUBBED_LENGTH = 6
const MAX_MESSAGE = 300
const MAX_CAUSES = 4

/** True for Redis's answer to EVALSHA of a script it does not hold (looked for in the message, echoes cut). */
export function isNoScript(error: unknown): boolean {
  return error instanceof Error && /\bNOSCRIPT\b/.test(cutEchoes(error.message))
}

/** `error` as a new error carrying none of `sent` and no command: see the note above. */
export function cleanError(error: unknown, sent: readonly string[], depth = 0): Error {
  const original = error instanceof Error ? error : undefined
  const message = scrub(cutEchoes(original ? original.message : String(error)), sent)
  const cause =
    original?.cause !== undefined && depth < MAX_CAUSES
      ? cleanError(original.cause, sent, depth + 1)
      : undefined
  const clean = new Error(message, cause === undefined ? undefined : { cause })
  if (original && typeof original.name === 'string' && original.name !== 'Error') {
    clean.name = scrub(original.name, sent).slice(0, 60)
  }
  const code = (original as { code?: unknown } | undefined)?.code
  if ((typeof code === 'string' && /^[\w.-]{1,40}$/.test(code)) || typeof code === 'number') {
    Object.defineProperty(clean, 'code', { value: code, enumerable: true })
  }
  return clean
}

function cutEchoes(message: string): string {
  let text = message
  for (const echo of ECHOES) {
    const at = text.indexOf(echo)
    if (at >= 0) text = `${text.slice(0, at).replace(/[\s,:;]+$/, '')} [...]`
  }
  return text
}

function scrub(text: string, sent: readonly string[]): string {
  let clean = text
  for (const arg of sent) {
    if (arg.length >= SCRUBBED_LENGTH && clean.includes(arg)) clean = clean.split(arg).join('[...]')
  }
  return clean.length > MAX_MESSAGE ? `${clean.slice(0, MAX_MESSAGE)}...` : clean
}

/** Names the reply's kind only: a malformed reply may hold session values. */
export function unexpected(what: string, reply: unknown): Error {
  const kind = reply === null ? 'null' : Array.isArray(reply) ? 'an array' : `a ${typeof reply}`
  return new TypeError(`unexpected ${what} reply from Redis: ${kind}`)
}
