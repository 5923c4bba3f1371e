/**
 * @module cookieStore(): the whole session sealed (encrypted and authenticated) inside the cookie, in iron's
 * `Fe26.2` format. The server keeps nothing.
 */

import { algorithms, defaults, generateKey, macPrefix, randomBits } from 'iron-webcrypto'
import { decodeBase64url, encodeBase64url, isCanonicalBase64url } from '../crypto.ts'
import { SessionError } from '../errors.ts'
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

const encoder = new TextEncoder()
const decoder = new TextDecoder()

interface SecretKeys {
  /** Iron password id: names the secret in the seal, so rotation finds the right key without trying all. */
  id: string
  encryptionSalt: string
  integritySalt: string
  encryption: CryptoKey
  integrity: CryptoKey
}

/**
 * Iron seals with keys derived once per secret. Iron derives a key from the password and a salt written into
 * each seal; `seal()` picks a fresh salt every time, which costs a PBKDF2 derivation per call. Here each secret
 * has a fixed salt (derived from the secret), so its keys are derived once and each seal costs two Web Crypto
 * calls: encrypt, then sign. The random IV still makes every seal different. The result is a standard iron seal
 * that iron itself unseals with the same secret.
 */
/** The id and salts this sealer writes: lowercase hex labels (see `label`). */
const HEX = /^[0-9a-f]{1,64}$/

class IronSealer implements Sealer {
  readonly #secrets: readonly string[]
  #keys: Promise<SecretKeys[]> | undefined

  constructor(secrets: readonly string[]) {
    this.#secrets = secrets
  }

  #derive(): Promise<SecretKeys[]> {
    this.#keys ??= Promise.all(this.#secrets.map(deriveKeys)).catch((error: unknown) => {
      this.#keys = undefined
      throw error
    })
    return this.#keys
  }

  async seal(session: SealedSession): Promise<string> {
    const [keys] = await this.#derive()
    const { id, encryptionSalt, integritySalt, encryption, integrity } = keys as SecretKeys
    const iv = randomBits(algorithms[defaults.encryption.algorithm].ivBits)
    const plaintext = encoder.encode(JSON.stringify(toPayload(session)))
    const encrypted = new Uint8Array(
      await crypto.subtle.encrypt({ name: 'AES-CBC', iv }, encryption, plaintext),
    )
    // Fe26.2*<password id>*<encryption salt>*<iv>*<ciphertext>*<expiration: none, judged by the sessions layer>
    const base = `${macPrefix}*${id}*${encryptionSalt}*${encodeBase64url(iv)}*${encodeBase64url(encrypted)}*`
    const mac = new Uint8Array(await crypto.subtle.sign('HMAC', integrity, encoder.encode(base)))
    return `${base}*${integritySalt}*${encodeBase64url(mac)}`
  }

  /** Cheap and synchronous: whether `value` has the shape of a seal this sealer writes (no crypto). */
  isWellFormed(value: string): boolean {
    const seal = sealParts(value)
    return (
      seal !== null &&
      HEX.test(seal.id) &&
      HEX.test(seal.encryptionSalt) &&
      HEX.test(seal.integritySalt) &&
      seal.ivText.length === 22 &&
      seal.macText.length === 43 &&
      seal.encryptedText.length > 0 &&
      isCanonicalBase64url(seal.ivText) &&
      isCanonicalBase64url(seal.macText) &&
      isCanonicalBase64url(seal.encryptedText)
    )
  }

  async unseal(value: string): Promise<{ session: SealedSession; rotated: boolean } | null> {
    const seal = sealParts(value)
    if (!seal) return null
    const { prefix, id, encryptionSalt, ivText, encryptedText, integritySalt, macText } = seal
    const all = await this.#derive()
    const index = all.findIndex((keys) => keys.id === id)
    const keys = all[index]
    // Only this library's salts: an unknown salt would mean a key derivation per request, for a forger to ask.
    if (!keys || keys.encryptionSalt !== encryptionSalt || keys.integritySalt !== integritySalt) return null
    // Canonical base64url only (iron-webcrypto's own decoder accepts variants of the last character).
    const mac = decodeBase64url(macText)
    const iv = decodeBase64url(ivText)
    const encrypted = decodeBase64url(encryptedText)
    if (
      !mac ||
      !iv ||
      !encrypted ||
      iv.length !== 16 ||
      encrypted.length === 0 ||
      encrypted.length % 16 !== 0
    ) {
      return null
    }
    const base = `${prefix}*${id}*${encryptionSalt}*${ivText}*${encryptedText}*`
    try {
      // The MAC is checked (in constant time) before anything is decrypted.
      if (!(await crypto.subtle.verify('HMAC', keys.integrity, mac, encoder.encode(base)))) return null
      const plaintext = await crypto.subtle.decrypt({ name: 'AES-CBC', iv }, keys.encryption, encrypted)
      const session = fromPayload(JSON.parse(decoder.decode(plaintext)))
      return session ? { session, rotated: index > 0 } : null
    } catch {
      return null
    }
  }
}

/** The parts of an iron seal as this sealer writes it (`Fe26.2`, no expiration), or null. */
function sealParts(value: string) {
  const parts = value.split('*')
  if (parts.length !== 8) return null
  const [prefix, id, encryptionSalt, ivText, encryptedText, expiration, integritySalt, macText] = parts as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ]
  if (prefix !== macPrefix || expiration !== '') return null
  return { prefix, id, encryptionSalt, ivText, encryptedText, integritySalt, macText }
}

async function deriveKeys(secret: string): Promise<SecretKeys> {
  const [id, encryptionSalt, integritySalt] = await Promise.all([
    label(secret, 'id', 12),
    label(secret, 'encryption', 32),
    label(secret, 'integrity', 32),
  ])
  const common = { iterations: defaults.encryption.iterations, minPasswordlength: 32 }
  const [encryption, integrity] = await Promise.all([
    generateKey(secret, { ...common, algorithm: defaults.encryption.algorithm, salt: encryptionSalt }),
    generateKey(secret, { ...common, algorithm: defaults.integrity.algorithm, salt: integritySalt }),
  ])
  return { id, encryptionSalt, integritySalt, encryption: encryption.key, integrity: integrity.key }
}

/** A hex string derived from the secret for one purpose: stable across instances, revealing nothing usable. */
async function label(secret: string, purpose: string, length: number): Promise<string> {
  const digest = await crypto.subtle.digest(
    'SHA-256',
    encoder.encode(`edge-session:iron:${purpose}:${secret}`),
  )
  let hex = ''
  for (const byte of new Uint8Array(digest)) hex += byte.toString(16).padStart(2, '0')
  return hex.slice(0, length)
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
