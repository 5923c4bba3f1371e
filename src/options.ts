/**
 * @module The options of `createSessions()`: their types, their defaults, and every check. A bad configuration
 * throws `ERR_CONFIG` here, when the sessions are created, never at a request.
 */

import { isAttributeValue, isCookieName, type SameSite } from './cookie.ts'
import { SessionError } from './errors.ts'
import type { SessionStore } from './store.ts'

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
  /** Where sessions live: `memoryStore()`, `upstashStore()`, `cloudflareKvStore()`, `cookieStore()`... */
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
  /**
   * At a `setUser` commit, the user's least recently seen sessions beyond this many are revoked (never the one
   * being committed). Default: no limit. Server stores only.
   */
  maxSessionsPerUser?: number
  /**
   * Keep a short-lived sealed copy of the session in a second cookie (`<name>.cache`), so most reads make no store
   * call. `maxAge`: seconds a copy is trusted, 1 to 300. A revoke, a destroy or a change made elsewhere is seen by
   * this browser within `maxAge` at most (`load(request, env, { fresh: true })` sees it at once). Off by default;
   * server stores only. See docs/cookie-cache.md.
   */
  cookieCache?: CookieCacheOptions
}

/** Options of the cookie cache (`cookieCache`). */
export interface CookieCacheOptions {
  /** Seconds a cached copy is trusted from its issue: an integer from 1 to 300. */
  maxAge: number
}

/** The cookie options in force. */
export type ResolvedCookieOptions = Readonly<Required<Omit<CookieOptions, 'domain'>>> & {
  readonly domain: string | undefined
}

/** The options in force, defaults applied. */
export interface ResolvedSessionsOptions {
  readonly store: SessionStore
  readonly cookie: ResolvedCookieOptions
  readonly idleTimeout: number
  readonly absoluteTimeout: number
  readonly touchInterval: number
  readonly storeTimeout: number
  readonly now: () => number
  readonly maxSessionsPerUser: number | undefined
  /** The cookie cache, when on. */
  readonly cookieCache: Readonly<CookieCacheOptions> | undefined
}

export const DEFAULTS = Object.freeze({
  idleTimeout: 30 * 60,
  absoluteTimeout: 7 * 24 * 3600,
  touchInterval: 60,
  storeTimeout: 5000,
})

const OPTION_NAMES = [
  'store',
  'secrets',
  'cookie',
  'idleTimeout',
  'absoluteTimeout',
  'touchInterval',
  'storeTimeout',
  'now',
  'maxSessionsPerUser',
  'cookieCache',
] as const
const COOKIE_CACHE_OPTION_NAMES = ['maxAge'] as const
/** Longest `cookieCache.maxAge`, in seconds: how long a revocation may go unseen, at most. */
const MAX_CACHE_AGE = 300
const COOKIE_OPTION_NAMES = [
  'name',
  'path',
  'domain',
  'sameSite',
  'secure',
  'httpOnly',
  'partitioned',
] as const

/** A host name for `Domain=` (RFC 6265bis §5.6.3; RFC 1123 labels), an optional leading dot allowed. */
const DOMAIN =
  /^\.?(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/
/** A `Path=` value: printable ASCII without `;` (RFC 6265bis §4.1.1 av-octet, minus controls). */
const PATH = /^\/[\x20-\x3A\x3C-\x7E]*$/

/** The options with defaults applied, or `ERR_CONFIG` naming what is wrong. */
export function resolveOptions(options: SessionsOptions): ResolvedSessionsOptions {
  if (typeof options !== 'object' || options === null)
    throw configError('createSessions() needs an options object')
  refuseUnknown(options, OPTION_NAMES, '')
  const store = resolveStore(options.store)
  resolveSecrets(options.secrets)
  const timing = resolveTiming(options, store)
  const cookie = resolveCookie(options.cookie)
  const cookieCache = resolveCookieCache(options.cookieCache, store)
  return Object.freeze({ store, cookie, ...timing, cookieCache })
}

/** The secrets as an array, checked. */
export function resolveSecrets(secrets: SessionsOptions['secrets']): readonly string[] {
  const list: unknown = typeof secrets === 'string' ? [secrets] : secrets
  if (secrets === undefined) {
    throw configError(
      'options.secrets is undefined: is the environment variable that should hold the secret unset? Make one with: node -e "console.log(crypto.randomUUID() + crypto.randomUUID())"',
    )
  }
  if (!Array.isArray(list) || list.length === 0) {
    throw configError('options.secrets must be a secret string or a non-empty array of them')
  }
  list.forEach((secret: unknown, i: number) => {
    if (secret === undefined) {
      throw configError(
        `options.secrets[${i}] is undefined: is the environment variable that should hold it unset? Leave out secrets you do not have.`,
      )
    }
    if (typeof secret !== 'string' || secret.length < 32) {
      throw configError(`options.secrets[${i}] must be a string of at least 32 characters`)
    }
  })
  return [...(list as string[])]
}

function resolveStore(value: unknown): SessionStore {
  const store = value as Partial<Record<string, unknown>> | undefined
  if (typeof store !== 'object' || store === null) {
    throw configError('options.store must be a session store, such as memoryStore() or cookieStore()')
  }
  if (store.kind === 'cookie') {
    if (typeof store.createSealer !== 'function') throw configError('A cookie store needs createSealer()')
    return store as unknown as SessionStore
  }
  if (store.kind !== undefined && store.kind !== 'server') {
    throw configError(`options.store.kind must be 'server', 'cookie' or absent, got ${String(store.kind)}`)
  }
  const missing = ['get', 'set', 'patch', 'delete'].filter((method) => typeof store[method] !== 'function')
  if (missing.length > 0) {
    throw configError(
      `options.store must be a session store: a server store needs get, set, patch and delete methods (missing: ${missing.join(', ')})`,
    )
  }
  return store as unknown as SessionStore
}

function resolveTiming(options: SessionsOptions, store: SessionStore) {
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
  // The store's own check first (its message can say more), then the floor every store with one must respect:
  // its least time between touches (Cloudflare KV: 60 s) keeps a reading user alive only if it is shorter than
  // the idle timeout, whatever touchInterval says.
  if (store.kind !== 'cookie') store.validate?.({ idleTimeout, absoluteTimeout, touchInterval })
  const floor = store.kind === 'cookie' ? 0 : (store.minTouchInterval ?? 0) / 1000
  if (floor >= idleTimeout) {
    throw configError(
      `idleTimeout (${idleTimeout} s) must be longer than the ${store.name} store's ${floor} s between touches, or a user who only reads would be logged out`,
    )
  }
  const storeTimeout = options.storeTimeout ?? DEFAULTS.storeTimeout
  if (typeof storeTimeout !== 'number' || !Number.isFinite(storeTimeout) || storeTimeout <= 0) {
    throw configError(`storeTimeout must be a positive number of milliseconds, got ${String(storeTimeout)}`)
  }
  const now = options.now ?? Date.now
  if (typeof now !== 'function')
    throw configError('options.now must be a function returning ms since the epoch')
  const maxSessionsPerUser = options.maxSessionsPerUser
  if (maxSessionsPerUser !== undefined) {
    if (
      typeof maxSessionsPerUser !== 'number' ||
      !Number.isInteger(maxSessionsPerUser) ||
      maxSessionsPerUser < 1
    )
      throw configError(`maxSessionsPerUser must be a positive integer, got ${String(maxSessionsPerUser)}`)
    if (store.kind === 'cookie')
      throw configError('maxSessionsPerUser needs a server store: sealed cookies keep no record to revoke')
  }
  return { idleTimeout, absoluteTimeout, touchInterval, storeTimeout, now, maxSessionsPerUser }
}

function resolveCookieCache(
  options: CookieCacheOptions | undefined,
  store: SessionStore,
): Readonly<CookieCacheOptions> | undefined {
  if (options === undefined) return undefined
  if (typeof options !== 'object' || options === null)
    throw configError('options.cookieCache must be an object such as { maxAge: 30 }')
  refuseUnknown(options, COOKIE_CACHE_OPTION_NAMES, 'cookieCache.')
  if (store.kind === 'cookie') {
    throw configError(
      'cookieCache needs a server store: with the cookie store the cookie already is the session',
    )
  }
  const { maxAge } = options
  if (typeof maxAge !== 'number' || !Number.isInteger(maxAge) || maxAge < 1 || maxAge > MAX_CACHE_AGE) {
    throw configError(
      `cookieCache.maxAge must be a whole number of seconds from 1 to ${MAX_CACHE_AGE}, got ${String(maxAge)}`,
    )
  }
  return Object.freeze({ maxAge })
}

function resolveCookie(options: CookieOptions | undefined): ResolvedCookieOptions {
  if (options !== undefined && (typeof options !== 'object' || options === null))
    throw configError('options.cookie must be an object')
  const c = options ?? {}
  refuseUnknown(c, COOKIE_OPTION_NAMES, 'cookie.')
  const cookie = {
    name: c.name ?? 'sid',
    path: c.path ?? '/',
    domain: c.domain,
    sameSite: c.sameSite ?? 'Lax',
    secure: c.secure ?? true,
    httpOnly: c.httpOnly ?? true,
    partitioned: c.partitioned ?? false,
  } as const
  if (typeof cookie.name !== 'string' || !isCookieName(cookie.name))
    throw configError(`cookie.name ${JSON.stringify(cookie.name)} is not a valid cookie name`)
  if (typeof cookie.path !== 'string' || !PATH.test(cookie.path) || !isAttributeValue(cookie.path)) {
    throw configError('cookie.path must start with "/" and hold only printable ASCII, without ";"')
  }
  if (cookie.domain !== undefined && (typeof cookie.domain !== 'string' || !DOMAIN.test(cookie.domain))) {
    throw configError(
      `cookie.domain must be a host name such as "example.com", got ${JSON.stringify(cookie.domain)}`,
    )
  }
  if (!['Strict', 'Lax', 'None'].includes(cookie.sameSite)) {
    throw configError(`cookie.sameSite must be 'Strict', 'Lax' or 'None'`)
  }
  if (cookie.secure !== true && cookie.secure !== false && cookie.secure !== 'auto') {
    throw configError(`cookie.secure must be true, false or 'auto'`)
  }
  for (const flag of ['httpOnly', 'partitioned'] as const) {
    if (typeof cookie[flag] !== 'boolean') throw configError(`cookie.${flag} must be true or false`)
  }
  // RFC 6265bis §4.1.3: browsers reject prefixed cookies that break these rules (they match the prefixes
  // case-insensitively, §5.7), so refuse them now.
  const lower = cookie.name.toLowerCase()
  const host = lower.startsWith('__host-')
  const prefixed = host || lower.startsWith('__secure-')
  let secure: boolean | 'auto' = cookie.secure
  if (prefixed || cookie.sameSite === 'None' || cookie.partitioned) {
    if (secure === false) {
      const why = prefixed
        ? `the name ${cookie.name}`
        : cookie.partitioned
          ? 'partitioned'
          : "sameSite 'None'"
      throw configError(`cookie.secure cannot be false with ${why}: browsers require Secure`)
    }
    secure = true
  }
  if (host && (cookie.path !== '/' || cookie.domain !== undefined)) {
    throw configError('A __Host- cookie must have path "/" and no domain')
  }
  return Object.freeze({ ...cookie, secure })
}

function positiveSeconds(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw configError(`${name} must be a positive number of seconds, got ${String(value)}`)
  }
  return value
}

/** An option the library does not know is a typo more often than not: name it, and the closest known one. */
function refuseUnknown(options: object, known: readonly string[], path: string): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue
    const closest = closestName(key, known)
    throw configError(
      `Unknown option ${path}${key}${closest ? `: did you mean ${path}${closest}?` : ''} Known options: ${known.map((name) => path + name).join(', ')}`,
    )
  }
}

/** The known name nearest to `name` by edit distance, when near enough to be a typo. */
function closestName(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Math.max(2, Math.floor(name.length / 3)) + 1
  for (const candidate of known) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase())
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  return best
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1)
      current.push(Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, substitution))
    }
    previous = current
  }
  return previous[b.length] as number
}

export function configError(message: string): SessionError {
  return new SessionError('ERR_CONFIG', message)
}
