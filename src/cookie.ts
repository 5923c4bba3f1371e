/**
 * @module Cookie header parsing and Set-Cookie serialization (RFC 6265bis), with nothing framework-specific.
 * @see https://datatracker.ietf.org/doc/html/draft-ietf-httpbis-rfc6265bis
 */

/** Browsers keep at most 4096 bytes of name plus value per cookie (RFC 6265bis §5.6). */
export const MAX_COOKIE_SIZE = 4096
/** Max-Age is capped at 400 days (RFC 6265bis §5.6.2). */
const MAX_AGE_CAP = 400 * 24 * 3600

export type SameSite = 'Strict' | 'Lax' | 'None'

export interface CookieAttributes {
  /** Seconds; 0 deletes the cookie. Omitted: a browser-session cookie. */
  maxAge?: number
  domain?: string
  path?: string
  sameSite?: SameSite
  secure?: boolean
  httpOnly?: boolean
  partitioned?: boolean
}

// token = 1*tchar (RFC 9110 §5.6.2): what a cookie name may be.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

export function isCookieName(name: string): boolean {
  return TOKEN.test(name)
}

/** Attribute values may hold no control character and no semicolon, which would start another attribute. */
export function isAttributeValue(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i)
    if (code < 0x20 || code === 0x7f || code === 0x3b) return false
  }
  return true
}

/**
 * The cookies in a `Cookie` header whose name is `name` or starts with `name.` (chunks), as [name, value] pairs in
 * header order, duplicates kept. Never throws: malformed pairs are skipped, values are not percent-decoded (the
 * values this library writes never need it), and values longer than a browser would keep are dropped.
 */
export function readCookies(header: string | null, name: string): Array<[string, string]> {
  const found: Array<[string, string]> = []
  if (!header || header.indexOf(name) === -1) return found
  const length = header.length
  let start = 0
  while (start < length) {
    let end = header.indexOf(';', start)
    if (end === -1) end = length
    // The '=' is looked for inside the pair only, so the parse is linear: an indexOf('=') from the pair's start
    // runs on to the header's end on pairs without one (quadratic: 1 MiB took seconds). A char loop rather than
    // an indexOf remembered across pairs: on Node 20 optimized code sometimes ran that indexOf on every pair.
    let eq = start
    while (eq < end && header.charCodeAt(eq) !== 0x3d) eq++
    if (eq < end) {
      const key = header.slice(start, eq).trim()
      if (
        key === name ||
        (key.length > name.length + 1 && key.startsWith(name) && key[name.length] === '.')
      ) {
        let value = header.slice(eq + 1, end).trim()
        if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1)
        if (key.length + value.length <= MAX_COOKIE_SIZE) found.push([key, value])
      }
    }
    start = end + 1
  }
  return found
}

/**
 * `; Max-Age=N` for a Set-Cookie header, N whole seconds capped at 400 days, with a past `Expires` when N is
 * 0 (for clients that ignore Max-Age); empty for a browser-session cookie.
 */
export function maxAgeAttribute(maxAge: number | undefined): string {
  if (maxAge === undefined) return ''
  const seconds = Math.min(Math.max(Math.floor(maxAge), 0), MAX_AGE_CAP)
  return seconds === 0 ? '; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT' : `; Max-Age=${seconds}`
}

/**
 * The attributes of a Set-Cookie header after Max-Age (which this leaves out), checked: for attributes that do
 * not change, write them once and reuse the text.
 */
export function serializeAttributes(attributes: CookieAttributes): string {
  let text = ''
  if (attributes.domain !== undefined) {
    if (!isAttributeValue(attributes.domain)) throw new TypeError('Invalid cookie domain')
    text += `; Domain=${attributes.domain}`
  }
  if (attributes.path !== undefined) {
    if (!isAttributeValue(attributes.path)) throw new TypeError('Invalid cookie path')
    text += `; Path=${attributes.path}`
  }
  if (attributes.httpOnly) text += '; HttpOnly'
  if (attributes.secure) text += '; Secure'
  if (attributes.sameSite) text += `; SameSite=${attributes.sameSite}`
  if (attributes.partitioned) text += '; Partitioned'
  return text
}

/**
 * Splits a value into cookies `name.0`, `name.1`... each within {@link MAX_COOKIE_SIZE}, or returns the single
 * cookie `name` when it fits. Returns null when more than `maxChunks` cookies would be needed.
 */
export function splitCookieValue(
  name: string,
  value: string,
  maxChunks: number,
): Array<[string, string]> | null {
  // Written conservatively: `name=value` whole within the limit, whether or not a browser counts the `=`.
  if (name.length + 1 + value.length <= MAX_COOKIE_SIZE) return [[name, value]]
  const chunkSize = MAX_COOKIE_SIZE - `${name}.${maxChunks - 1}=`.length
  const count = Math.ceil(value.length / chunkSize)
  if (count > maxChunks) return null
  const chunks: Array<[string, string]> = []
  for (let i = 0; i < count; i++)
    chunks.push([`${name}.${i}`, value.slice(i * chunkSize, (i + 1) * chunkSize)])
  return chunks
}

/**
 * The chunk index of `key` when it is a chunk name of `name` (`name.0` .. `name.<maxChunks - 1>`, canonical
 * decimal); -1 otherwise.
 */
function chunkIndex(name: string, key: string, maxChunks: number): number {
  if (key.length < name.length + 2 || !key.startsWith(name) || key[name.length] !== '.') return -1
  const digits = key.slice(name.length + 1)
  if (!/^(0|[1-9][0-9]{0,2})$/.test(digits)) return -1
  const index = Number(digits)
  return index < maxChunks ? index : -1
}

/**
 * The names among `cookies` that are this session's own (`name`, or a chunk `name.N` below `maxChunks`), each
 * once: the only names a response may clear. Names a request merely carries are never echoed otherwise.
 */
export function ownCookieNames(
  name: string,
  cookies: ReadonlyArray<readonly [string, string]>,
  maxChunks: number,
): string[] {
  const names: string[] = []
  for (const [key] of cookies) {
    if ((key === name || chunkIndex(name, key, maxChunks) !== -1) && !names.includes(key)) names.push(key)
  }
  return names
}

/**
 * Session cookie values checked per request at most. A browser may send several of one name (other paths, a
 * sibling subdomain's `Domain=` cookie, a stale one), an attacker's first; values that do not have the shape of
 * a session cookie at all are skipped without counting.
 */
export const MAX_COOKIE_CANDIDATES = 8

/** Values tried per chunk index at most: a genuine one and one duplicate (a stale or planted cookie). */
const VALUES_PER_CHUNK = 2

/**
 * The values a request may hold a session in, reassembled from the cookies {@link readCookies} found, most
 * likely first: every plain `name` value in header order, then chunk runs `name.0`..`name.K` joined in order,
 * longest first, trying at most two values per index. A stray chunk past the run, or a duplicated one, cannot
 * hide the genuine run. Lazy: the caller stops as soon as one opens.
 */
export function* cookieValueCandidates(
  name: string,
  cookies: ReadonlyArray<readonly [string, string]>,
  maxChunks: number,
): Generator<string> {
  const chunks: string[][] = []
  for (const [key, value] of cookies) {
    if (key === name) {
      yield value
      continue
    }
    const index = chunkIndex(name, key, maxChunks)
    if (index === -1) continue
    const values = chunks[index] ?? []
    chunks[index] = values
    if (values.length < VALUES_PER_CHUNK && !values.includes(value)) values.push(value)
  }
  let run = 0
  while (run < chunks.length && chunks[run] !== undefined) run++
  for (let length = run; length >= 2; length--) yield* joinings(chunks, length, 0, '')
}

function* joinings(chunks: string[][], length: number, index: number, prefix: string): Generator<string> {
  if (index === length) {
    yield prefix
    return
  }
  for (const value of chunks[index] as string[]) yield* joinings(chunks, length, index + 1, prefix + value)
}
