/**
 * @module The cookie cache (`cookieCache: { maxAge }`): a short-lived sealed copy of a server-stored session in a
 * second cookie, `<name>.cache`, so most reads make no store call. See docs/cookie-cache.md.
 */

import { MAX_COOKIE_SIZE } from './cookie.ts'
import { CookieValueCache } from './crypto.ts'
import { fromRecordPayload, IronSeals, type RecordPayload, toRecordPayload } from './iron.ts'
import type { Lifetimes } from './lifetimes.ts'
import type { CachedView } from './session.ts'
import type { SetCookieWriter } from './set-cookie.ts'
import { copyData, type SessionData, type SessionMeta } from './store.ts'
import { metaWithTimes, storedData } from './stores/shared.ts'

/** The sealed JSON: the storage key copied and the copy's issue time beside the record's data and metadata. */
interface Payload extends RecordPayload {
  k: string
  t: number
}

/** An opened cache cookie: the view, and whether a secret other than the first sealed it. */
export interface OpenedCache {
  view: CachedView
  rotated: boolean
}

/** The cache cookie a request holds: its one value (null when none, or several: a duplicate is not guessed at). */
export interface HeldCache {
  held: boolean
  value: string | null
}

export class CookieCache {
  /** `<session cookie name>.cache`: read by `readCookies` with the session's own cookies. */
  readonly name: string
  readonly #maxAgeMs: number
  readonly #seals: IronSeals
  readonly #lifetimes: Lifetimes
  readonly #cookies: SetCookieWriter
  /** Cache cookie value → what it opened to: a value opened (or sealed) here costs no crypto again. */
  readonly #opened = new CookieValueCache<OpenedCache>(1000, -16)

  constructor(
    cookieName: string,
    maxAge: number,
    secrets: readonly string[],
    lifetimes: Lifetimes,
    cookies: SetCookieWriter,
  ) {
    this.name = `${cookieName}.cache`
    this.#maxAgeMs = maxAge * 1000
    this.#seals = new IronSeals(secrets, 'cache')
    this.#lifetimes = lifetimes
    this.#cookies = cookies
  }

  /** The cache cookie among a request's cookies of the session's name. */
  held(cookies: ReadonlyArray<readonly [string, string]>): HeldCache {
    let value: string | null = null
    let count = 0
    for (const [name, found] of cookies) {
      if (name !== this.name) continue
      count++
      value = found
    }
    return { held: count > 0, value: count === 1 ? value : null }
  }

  /**
   * What the cache cookie `value` holds, when it is a valid seal of a cache payload; null otherwise (forged,
   * tampered, sealed under an unknown secret: ignored, never an error). Whether it may be trusted for a session
   * is {@link trusted}'s to say.
   */
  open(value: string): OpenedCache | null | Promise<OpenedCache | null> {
    const known = this.#opened.get(value)
    if (known !== undefined) return known
    if (!this.#seals.isWellFormed(value)) return null
    return this.#seals.unseal(value).then((opened) => {
      const view = opened ? fromPayload(opened.value) : null
      if (!opened || !view) return null
      const result = { view, rotated: opened.rotated }
      this.#opened.set(value, result)
      return result
    })
  }

  /**
   * Whether `opened` copies the record under `key` and is still trusted at `now`: within `maxAge` of its issue and
   * within the session's own deadlines, both checked on every read.
   */
  trusted(opened: OpenedCache, key: string, now: number): boolean {
    // A copy dated in the future is not trusted (another instance's clock ahead): the store is read instead.
    return opened.view.key === key && opened.view.issuedAt <= now && this.#lifetime(opened.view, now) > 0
  }

  /**
   * The `Set-Cookie` of a cache copying the record under `key` as the store holds it at `now`; null when none may
   * be issued: the record holds a flash (a flash is never shown twice from a cache), it is no longer live, or the
   * cookie with its attributes would pass 4096 bytes.
   */
  async issue(key: string, data: SessionData, meta: SessionMeta, now: number, url: string) {
    if (meta.flash !== undefined && meta.flash.length > 0) return null
    // A copy: the view is kept (opened values are remembered), and `data` may be the store's or the session's.
    const view: CachedView = { key, data: copyData(data), meta: metaWithTimes(meta, meta), issuedAt: now }
    return this.#write(view, now, url)
  }

  /** The cache `view` sealed again under the first secret: no store call, its issue time (and expiry) kept. */
  reseal(view: CachedView, now: number, url: string): Promise<string | null> {
    return this.#write(view, now, url)
  }

  /** A `Set-Cookie` deleting the cache cookie. */
  clear(url: string): string {
    return this.#cookies.clear(this.name, url)
  }

  async #write(view: CachedView, now: number, url: string): Promise<string | null> {
    const lifetime = this.#lifetime(view, now)
    if (lifetime <= 0) return null
    const value = await this.#seals.seal(toPayload(view))
    const cookie = this.#cookies.cookie(this.name, value, lifetime, url)
    // RFC 6265bis §5.6: browsers drop a larger cookie. No chunking: the store still has the session.
    if (cookie.length > MAX_COOKIE_SIZE) return null
    this.#opened.set(value, { view, rotated: false })
    return cookie
  }

  /** How much longer the view is trusted: its `maxAge`, and never past the session's own deadlines. */
  #lifetime(view: CachedView, now: number): number {
    const { meta } = view
    const deadline = Math.min(meta.expiresAt, this.#lifetimes.deadline(meta.createdAt, meta.lastSeenAt))
    return Math.min(view.issuedAt + this.#maxAgeMs, deadline) - now
  }
}

function toPayload(view: CachedView): Payload {
  return { k: view.key, t: view.issuedAt, ...toRecordPayload(view.data, view.meta) }
}

function fromPayload(value: unknown): CachedView | null {
  const record = fromRecordPayload(value)
  if (record === null) return null
  const { k, t } = value as Partial<Payload>
  const data = storedData(record.data)
  if (typeof k !== 'string' || typeof t !== 'number' || !Number.isFinite(t) || data === null) return null
  // A copy never holds flash values (none is issued while the record has one).
  if (record.meta.flash !== undefined) return null
  return { key: k, data, meta: record.meta, issuedAt: t }
}
