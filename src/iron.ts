/**
 * @module Iron seals (`Fe26.2`: AES-256-CBC, then HMAC-SHA256 over the ciphertext) with keys derived once per
 * secret: what the cookie store and the cookie cache seal with.
 */

import { algorithms, defaults, generateKey, macPrefix, randomBits } from 'iron-webcrypto'
import { decodeBase64url, encodeBase64url, isCanonicalBase64url } from './crypto.ts'
import type { SessionData, SessionMeta } from './store.ts'
import { storedUser } from './stores/shared.ts'

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

/** The id and salts written here: lowercase hex labels (see `label`). */
const HEX = /^[0-9a-f]{1,64}$/

/**
 * Iron seals of JSON values with keys derived once per secret. Iron derives a key from the password and a salt
 * written into each seal; `seal()` picks a fresh salt every time, which costs a PBKDF2 derivation per call. Here
 * each secret has a fixed salt (derived from the secret and `purpose`), so its keys are derived once and each
 * seal costs two Web Crypto calls: encrypt, then sign. The random IV still makes every seal different. The result
 * is a standard iron seal that iron itself unseals with the same secret. Seals made for one purpose never open
 * for another: their salts and password ids differ.
 */
export class IronSeals {
  readonly #secrets: readonly string[]
  readonly #purpose: string
  #keys: Promise<SecretKeys[]> | undefined

  /** @param purpose `''` for the cookie store (its seals from before this option stay valid), else a name. */
  constructor(secrets: readonly string[], purpose = '') {
    this.#secrets = secrets
    this.#purpose = purpose
  }

  #derive(): Promise<SecretKeys[]> {
    this.#keys ??= Promise.all(this.#secrets.map((secret) => deriveKeys(secret, this.#purpose))).catch(
      (error: unknown) => {
        this.#keys = undefined
        throw error
      },
    )
    return this.#keys
  }

  /** `value` as JSON, sealed under the first secret. */
  async seal(value: unknown): Promise<string> {
    const [keys] = await this.#derive()
    const { id, encryptionSalt, integritySalt, encryption, integrity } = keys as SecretKeys
    const iv = randomBits(algorithms[defaults.encryption.algorithm].ivBits)
    const plaintext = encoder.encode(JSON.stringify(value))
    const encrypted = new Uint8Array(
      await crypto.subtle.encrypt({ name: 'AES-CBC', iv }, encryption, plaintext),
    )
    // Fe26.2*<password id>*<encryption salt>*<iv>*<ciphertext>*<expiration: none, judged by the sessions layer>
    const base = `${macPrefix}*${id}*${encryptionSalt}*${encodeBase64url(iv)}*${encodeBase64url(encrypted)}*`
    const mac = new Uint8Array(await crypto.subtle.sign('HMAC', integrity, encoder.encode(base)))
    return `${base}*${integritySalt}*${encodeBase64url(mac)}`
  }

  /** Cheap and synchronous: whether `value` has the shape of a seal written here (no crypto). */
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

  /**
   * The JSON value sealed in `value`, and whether a secret other than the first sealed it; null when it is not
   * a valid seal under any secret (never throws for bad input).
   */
  async unseal(value: string): Promise<{ value: unknown; rotated: boolean } | null> {
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
      return { value: JSON.parse(decoder.decode(plaintext)) as unknown, rotated: index > 0 }
    } catch {
      return null
    }
  }
}

/** The parts of an iron seal as written here (`Fe26.2`, no expiration), or null. */
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

async function deriveKeys(secret: string, purpose: string): Promise<SecretKeys> {
  const tag = purpose === '' ? '' : `${purpose}:`
  const [id, encryptionSalt, integritySalt] = await Promise.all([
    label(secret, `${tag}id`, 12),
    label(secret, `${tag}encryption`, 32),
    label(secret, `${tag}integrity`, 32),
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

/**
 * A session's data and metadata as the seals carry them (the cookie store's session, the cookie cache's copy):
 * short keys, since every byte travels with every request. Each adds its own fields (the id, the storage key).
 */
export interface RecordPayload {
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

export function toRecordPayload(data: SessionData, meta: SessionMeta): RecordPayload {
  const payload: RecordPayload = { d: data, c: meta.createdAt, l: meta.lastSeenAt, e: meta.expiresAt }
  if (meta.flash && meta.flash.length > 0) payload.f = meta.flash
  if (meta.handle !== undefined) payload.h = meta.handle
  if (meta.user) payload.u = [meta.user.id, meta.user.key, meta.user.agent, meta.user.label]
  return payload
}

/** The data and metadata an opened seal's JSON holds, checked field by field; null for anything malformed. */
export function fromRecordPayload(value: unknown): { data: SessionData; meta: SessionMeta } | null {
  if (typeof value !== 'object' || value === null) return null
  const p = value as Partial<Record<keyof RecordPayload, unknown>>
  if (typeof p.d !== 'object' || p.d === null || Array.isArray(p.d)) return null
  const { c, l, e } = p
  if (!isFiniteNumber(c) || !isFiniteNumber(l) || !isFiniteNumber(e)) return null
  const meta: SessionMeta = { createdAt: c, lastSeenAt: l, expiresAt: e }
  if (p.f !== undefined) {
    if (!Array.isArray(p.f) || !p.f.every((key) => typeof key === 'string')) return null
    meta.flash = p.f as string[]
  }
  if (p.h !== undefined) {
    if (typeof p.h !== 'string') return null
    meta.handle = p.h
  }
  if (p.u !== undefined) {
    if (!Array.isArray(p.u) || p.u.length !== 4) return null
    const [id, key, agent, label] = p.u as unknown[]
    const user = storedUser({ id, key, agent, label })
    if (user === null) return null
    meta.user = user
  }
  return { data: p.d as SessionData, meta }
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value)
}
