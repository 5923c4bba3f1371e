/**
 * @module The session's `Set-Cookie` headers: one sessions instance's attributes written once, the `Secure`
 * decision per request, and adding the headers to a Response (a copy when its headers are immutable).
 */

import { type CookieAttributes, maxAgeAttribute, serializeAttributes } from './cookie.ts'
import type { ResolvedCookieOptions } from './options.ts'

/** Writes the session cookies of one sessions instance. */
export class SetCookieWriter {
  readonly #secure: boolean | 'auto'
  /** The attributes after Max-Age, written once: without Secure, and with it. */
  readonly #plain: string
  readonly #secureAttributes: string
  /**
   * The last origin (everything before the path) judged for `secure: 'auto'`, and its answer. A server sees one
   * origin or few, and parsing a URL on every response cost a few µs.
   */
  #judgedOrigin = ''
  #judgedLocal = false

  constructor(options: ResolvedCookieOptions) {
    const attributes: CookieAttributes = {
      path: options.path,
      httpOnly: options.httpOnly,
      sameSite: options.sameSite,
      partitioned: options.partitioned,
    }
    if (options.domain !== undefined) attributes.domain = options.domain
    this.#secure = options.secure
    this.#plain = serializeAttributes({ ...attributes, secure: false })
    this.#secureAttributes = serializeAttributes({ ...attributes, secure: true })
  }

  /** `name=value` with Max-Age (whole seconds, rounded up) and the instance's attributes. */
  cookie(name: string, value: string, maxAgeMs: number, url: string): string {
    const secure = this.#secure === 'auto' ? !this.#isLocalHttp(url) : this.#secure
    // Nothing to check per response: the name was checked by createSessions (chunks only add `.N`), and values
    // are this library's own (base64url ids and signatures, iron seals, or empty).
    return `${name}=${value}${maxAgeAttribute(Math.ceil(maxAgeMs / 1000))}${secure ? this.#secureAttributes : this.#plain}`
  }

  /** A cookie that deletes `name` in the browser. */
  clear(name: string, url: string): string {
    return this.cookie(name, '', 0, url)
  }

  /** Plain http to the local machine: the one case where a browser may drop a `Secure` cookie. */
  #isLocalHttp(url: string): boolean {
    if (!url.startsWith('http:')) return false
    // The host lies before the first '/' after the scheme's "//": that prefix decides the answer.
    const slash = url.indexOf('/', 'http://'.length)
    const origin = slash === -1 ? url : url.slice(0, slash)
    if (origin === this.#judgedOrigin) return this.#judgedLocal
    let local = false
    try {
      const host = new URL(url).hostname
      local = host === 'localhost' || host === '127.0.0.1' || host === '[::1]' || host.endsWith('.localhost')
    } catch {
      local = false
    }
    this.#judgedOrigin = origin
    this.#judgedLocal = local
    return local
  }
}

/** Adds `Set-Cookie` headers, copying the response first when its headers are immutable (a fetched response). */
export function appendSetCookies(response: Response, cookies: readonly string[]): Response {
  if (cookies.length === 0) return response
  try {
    for (const cookie of cookies) response.headers.append('Set-Cookie', cookie)
    return response
  } catch {
    const copy = new Response(response.body, response)
    for (const cookie of cookies) copy.headers.append('Set-Cookie', cookie)
    return copy
  }
}
