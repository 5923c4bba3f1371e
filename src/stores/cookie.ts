/**
 * @module cookieStore(): the whole session sealed (encrypted and authenticated) inside the cookie, in iron's
 * `Fe26.2` format. The server keeps nothing.
 */

import { SessionError } from '../errors.ts'
import { IronSeals } from '../iron.ts'
import type { CookieStore, SealedSession, Sealer, SessionData, SessionMeta } from '../store.ts'

export interface CookieStoreOptions {
  /**
   * Most cookies one session may be split into, each at most 4096 bytes (1 to 5, default 5). A larger session
   * makes `commit` reject with `ERR_TOO_LARGE`.
   */
  maxChunks?: number
}

/**
 * Seals each session into its cookie with iron (AES-256-CBC, then HMAC-SHA256 over the ciphertext). No store
 * round trip, nothing to share between instances but the secrets.
 *
 * What a stateless cookie cannot do: revoke a copy of an old cookie (after `regenerate()` or `destroy()`, a copy
 * taken earlier still opens the session until its deadline), or be counted (`sessions.count()` rejects with
 * `ERR_UNSUPPORTED`). Browsers send the cookie with every request, so keep the data small.
 *
 * @param options `maxChunks`, how many 4 KiB cookies a session may take.
 * @example
 * ```ts
 * const sessions = createSessions({ store: cookieStore(), secrets: [env.SESSION_SECRET] })
 * ```
 * @see https://github.com/brc-dd/iron-webcrypto for the sealing format.
 */
export function cookieStore(options: CookieStoreOptions = {}): CookieStore {
  const maxChunks = options.maxChunks ?? 5
  if (!Number.isInteger(maxChunks) || maxChunks < 1 || maxChunks > 5) {
    throw new SessionError('ERR_CONFIG', `maxChunks must be an integer from 1 to 5, got ${String(maxChunks)}`)
  }
  return { kind: 'cookie', name: 'cookie', maxChunks, createSealer: (secrets) => new IronSealer(secrets) }
}

/** The cookie store's sealing: iron seals (see `IronSeals`) of a compact payload. */
class IronSealer implements Sealer {
  readonly #seals: IronSeals

  constructor(secrets: readonly string[]) {
    this.#seals = new IronSeals(secrets)
  }

  seal(session: SealedSession): Promise<string> {
    return this.#seals.seal(toPayload(session))
  }

  /** Cheap and synchronous: whether `value` has the shape of a seal this sealer writes (no crypto). */
  isWellFormed(value: string): boolean {
    return this.#seals.isWellFormed(value)
  }

  async unseal(value: string): Promise<{ session: SealedSession; rotated: boolean } | null> {
    const opened = await this.#seals.unseal(value)
    const session = opened ? fromPayload(opened.value) : null
    return opened && session ? { session, rotated: opened.rotated } : null
  }
}

/** The sealed JSON: short keys, since every byte travels with every request. */
interface Payload {
  i: string
  d: SessionData
  c: number
  l: number
  e: number
  f?: string[]
  /** The handle. */
  h?: string
  /** The user: id, key, agent, label. */
  u?: [string, string, string | null, string | null]
}

function toPayload(session: SealedSession): Payload {
  const { meta } = session
  const payload: Payload = {
    i: session.id,
    d: session.data,
    c: meta.createdAt,
    l: meta.lastSeenAt,
    e: meta.expiresAt,
  }
  if (meta.flash && meta.flash.length > 0) payload.f = meta.flash
  if (meta.handle !== undefined) payload.h = meta.handle
  if (meta.user) payload.u = [meta.user.id, meta.user.key, meta.user.agent, meta.user.label]
  return payload
}

function fromPayload(value: unknown): SealedSession | null {
  if (typeof value !== 'object' || value === null) return null
  const p = value as Partial<Payload>
  if (typeof p.i !== 'string' || typeof p.d !== 'object' || p.d === null || Array.isArray(p.d)) return null
  if (![p.c, p.l, p.e].every((n) => typeof n === 'number' && Number.isFinite(n))) return null
  const meta: SessionMeta = { createdAt: p.c as number, lastSeenAt: p.l as number, expiresAt: p.e as number }
  if (p.f !== undefined) {
    if (!Array.isArray(p.f) || !p.f.every((key) => typeof key === 'string')) return null
    meta.flash = p.f
  }
  if (p.h !== undefined) {
    if (typeof p.h !== 'string') return null
    meta.handle = p.h
  }
  if (p.u !== undefined) {
    const u: unknown[] = Array.isArray(p.u) ? p.u : []
    const [id, key, agent, label] = u
    const optional = (v: unknown) => v === null || typeof v === 'string'
    if (
      u.length !== 4 ||
      typeof id !== 'string' ||
      typeof key !== 'string' ||
      !optional(agent) ||
      !optional(label)
    )
      return null
    meta.user = { id, key, agent: agent as string | null, label: label as string | null }
  }
  return { id: p.i, data: p.d, meta }
}
