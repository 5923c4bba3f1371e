/** @module Web Crypto primitives: canonical base64url, session ids, HMAC signing, hashed storage keys, caches. */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const DECODE = new Int8Array(128).fill(-1)
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i

const encoder = new TextEncoder()

/** base64url without padding (RFC 4648 §5). */
export function encodeBase64url(bytes: Uint8Array): string {
  let out = ''
  let i = 0
  for (; i + 2 < bytes.length; i += 3) {
    const n = ((bytes[i] as number) << 16) | ((bytes[i + 1] as number) << 8) | (bytes[i + 2] as number)
    out +=
      ALPHABET.charAt(n >> 18) +
      ALPHABET.charAt((n >> 12) & 63) +
      ALPHABET.charAt((n >> 6) & 63) +
      ALPHABET.charAt(n & 63)
  }
  const rest = bytes.length - i
  if (rest === 1) {
    const n = (bytes[i] as number) << 16
    out += ALPHABET.charAt(n >> 18) + ALPHABET.charAt((n >> 12) & 63)
  } else if (rest === 2) {
    const n = ((bytes[i] as number) << 16) | ((bytes[i + 1] as number) << 8)
    out += ALPHABET.charAt(n >> 18) + ALPHABET.charAt((n >> 12) & 63) + ALPHABET.charAt((n >> 6) & 63)
  }
  return out
}

/**
 * Decodes unpadded base64url, or returns null. Only the canonical form is accepted: a last character whose unused
 * low bits are not zero is rejected, so no two strings decode to the same bytes (RFC 4648 §3.5). Without this a
 * signature could be altered in its last character and still verify.
 */
export function decodeBase64url(text: string): Uint8Array<ArrayBuffer> | null {
  const length = text.length
  if (length % 4 === 1) return null
  const out = new Uint8Array((length * 3) >> 2)
  let bits = 0
  let buffer = 0
  let o = 0
  for (let i = 0; i < length; i++) {
    const code = text.charCodeAt(i)
    const value = code < 128 ? (DECODE[code] as number) : -1
    if (value < 0) return null
    buffer = ((buffer << 6) | value) & 0xffffff
    bits += 6
    if (bits >= 8) {
      bits -= 8
      out[o++] = (buffer >> bits) & 0xff
    }
  }
  if (bits > 0 && (buffer & ((1 << bits) - 1)) !== 0) return null
  return out
}

/** True when `text` is canonical unpadded base64url. */
export function isCanonicalBase64url(text: string): boolean {
  return decodeBase64url(text) !== null
}

/** A new session id: 32 random bytes (256 bits), base64url (43 characters). */
export function createSessionId(): string {
  return encodeBase64url(crypto.getRandomValues(new Uint8Array(32)))
}

/** Session ids are exactly 43 canonical base64url characters. */
export function isSessionId(text: string): boolean {
  return text.length === 43 && isCanonicalBase64url(text)
}

/**
 * True when `value` has the shape of a signed id, `<43-char id>.<43-char signature>`, both canonical base64url:
 * what this library writes. Anything else is not worth a signature check.
 */
export function isSignedIdShape(value: string): boolean {
  return (
    value.length === 87 &&
    value.charCodeAt(43) === 46 /* . */ &&
    isSessionId(value.slice(0, 43)) &&
    isCanonicalBase64url(value.slice(44))
  )
}

/** `base64url(SHA-256(text))`: the storage key of an id, so a leaked store dump holds no usable cookie. */
export async function hashKey(text: string): Promise<string> {
  return encodeBase64url(new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(text))))
}

/** Imports an HMAC-SHA256 key from a secret string; done once per secret. */
export function importHmacKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
    'sign',
    'verify',
  ])
}

/** HMAC-SHA256 of `data`, base64url. */
export async function hmacSign(key: CryptoKey, data: string): Promise<string> {
  return encodeBase64url(new Uint8Array(await crypto.subtle.sign('HMAC', key, encoder.encode(data))))
}

/**
 * Verifies an HMAC-SHA256 signature in constant time (`crypto.subtle.verify`). Never throws: a malformed or
 * non-canonical signature is simply false.
 */
export async function hmacVerify(key: CryptoKey, data: string, signature: string): Promise<boolean> {
  const bytes = signature.length === 43 ? decodeBase64url(signature) : null
  if (!bytes) return false
  try {
    return await crypto.subtle.verify('HMAC', key, bytes, encoder.encode(data))
  } catch {
    return false
  }
}

/**
 * A map that forgets its oldest entry past `limit` entries. Used for results that are costly to compute and
 * safe to keep (a verified cookie, an unsealed session): only values that verified are ever stored, so a flood of
 * forged cookies cannot push them out faster than real ones arrive.
 */
export class BoundedCache<V> {
  readonly #entries = new Map<string, V>()
  readonly #limit: number

  constructor(limit: number) {
    this.#limit = limit
  }

  get(key: string): V | undefined {
    return this.#entries.get(key)
  }

  set(key: string, value: V): void {
    if (this.#limit <= 0) return
    if (this.#entries.size >= this.#limit && !this.#entries.has(key)) {
      const oldest = this.#entries.keys().next()
      if (!oldest.done) this.#entries.delete(oldest.value)
    }
    this.#entries.set(key, value)
  }

  get size(): number {
    return this.#entries.size
  }
}

/** What a signed cookie value proves: the session id, and whether a secret other than the first signed it. */
export interface VerifiedId {
  id: string
  /** `base64url(SHA-256(id))`, the storage key, computed once per verified value. */
  key: string
  rotated: boolean
}

/**
 * A bounded cache of what each cookie value was found to hold (a verified id, an unsealed session), filed under
 * 16 characters (96 bits) of the value's MAC. A Map hashes every character of a key, and a cookie value is a new
 * string in each request: hashing a whole seal (hundreds of characters) would cost more than the rest of a cached
 * read. Each entry keeps its whole value and a lookup compares it, so a short key can cost a miss, never a wrong
 * answer; and since only values that verified are stored, forged values cannot push real ones out.
 */
export class CookieValueCache<V> {
  readonly #entries: BoundedCache<{ value: string; result: V }>
  readonly #macAt: number

  /**
   * @param limit Entries kept.
   * @param macAt Where 16 characters of the MAC start in a value; negative counts from the end (-16: the last 16).
   */
  constructor(limit: number, macAt: number) {
    this.#entries = new BoundedCache(limit)
    this.#macAt = macAt
  }

  #key(value: string): string {
    const at = this.#macAt
    return at < 0 ? value.slice(at) : value.slice(at, at + 16)
  }

  get(value: string): V | undefined {
    const entry = this.#entries.get(this.#key(value))
    return entry !== undefined && entry.value === value ? entry.result : undefined
  }

  set(value: string, result: V): void {
    this.#entries.set(this.#key(value), { value, result })
  }
}

/**
 * Signs session ids as `<id>.<signature>` under the first secret and verifies them under every secret.
 * Each secret's key is imported once; each cookie value verified once (a bounded cache).
 */
export class IdSigner {
  readonly #secrets: readonly string[]
  #keys: Promise<CryptoKey[]> | undefined
  readonly #verified: CookieValueCache<VerifiedId>

  constructor(secrets: readonly string[], cacheSize = 10_000) {
    this.#secrets = secrets
    // <43-char id>.<43-char signature>: the signature starts at 44.
    this.#verified = new CookieValueCache(cacheSize, 44)
  }

  #importKeys(): Promise<CryptoKey[]> {
    this.#keys ??= Promise.all(this.#secrets.map(importHmacKey)).catch((error: unknown) => {
      this.#keys = undefined
      throw error
    })
    return this.#keys
  }

  /**
   * Signs `id` and remembers the result as verified, so the next request carrying it costs no crypto. `key` (the
   * id's storage key, only remembered) may still be computing: the signature does not wait for it.
   */
  async sign(id: string, key: string | Promise<string>): Promise<string> {
    const [first] = await this.#importKeys()
    const [signature, storageKey] = await Promise.all([hmacSign(first as CryptoKey, id), key])
    const value = `${id}.${signature}`
    this.#verified.set(value, { id, key: storageKey, rotated: false })
    return value
  }

  /** What `value` proves when it has already been verified (or signed) here; undefined otherwise. No crypto. */
  cached(value: string): VerifiedId | undefined {
    return this.#verified.get(value)
  }

  /** The id a cookie value carries when its signature verifies under any secret; null otherwise. */
  async verify(value: string): Promise<VerifiedId | null> {
    const cached = this.cached(value)
    if (cached) return cached
    // <43-char id>.<43-char signature>: anything else is not ours.
    if (value.length !== 87 || value.charCodeAt(43) !== 46 /* . */) return null
    const id = value.slice(0, 43)
    if (!isSessionId(id)) return null
    const signature = value.slice(44)
    const keys = await this.#importKeys()
    for (let i = 0; i < keys.length; i++) {
      if (await hmacVerify(keys[i] as CryptoKey, id, signature)) {
        const verified = { id, key: await hashKey(id), rotated: i > 0 }
        this.#verified.set(value, verified)
        return verified
      }
    }
    return null
  }
}
