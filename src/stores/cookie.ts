/**
 * @module cookieStore(): the whole session sealed (encrypted and authenticated) inside the cookie, in iron's
 * `Fe26.2` format. The server keeps nothing.
 */

import { SessionError } from '../errors.ts'
import { fromRecordPayload, IronSeals, type RecordPayload, toRecordPayload } from '../iron.ts'
import type { CookieStore, SealedSession, Sealer } from '../store.ts'

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

/** The sealed JSON: the session's id beside its data and metadata. */
interface Payload extends RecordPayload {
  i: string
}

function toPayload(session: SealedSession): Payload {
  return { i: session.id, ...toRecordPayload(session.data, session.meta) }
}

function fromPayload(value: unknown): SealedSession | null {
  const record = fromRecordPayload(value)
  const id = (value as Partial<Payload>).i
  return record && typeof id === 'string' ? { id, data: record.data, meta: record.meta } : null
}
