/** @module Web Crypto helpers: canonical base64url, ids, HMAC signing, storage keys, the bounded cache. */

import { describe, expect, it } from 'vitest'
import {
  BoundedCache,
  createSessionId,
  decodeBase64url,
  encodeBase64url,
  hashKey,
  IdSigner,
  isSessionId,
} from '../../src/crypto.ts'

const SECRET = 'crypto-test-secret-0123456789abcdefghij'
const OLD = 'crypto-test-old-secret-0123456789abcdefg'

describe('base64url', () => {
  it('round-trips every length and byte value', () => {
    for (let length = 0; length < 70; length++) {
      const bytes = crypto.getRandomValues(new Uint8Array(length))
      const text = encodeBase64url(bytes)
      expect(text).toMatch(/^[A-Za-z0-9_-]*$/)
      expect(decodeBase64url(text)).toEqual(bytes)
    }
    const all = Uint8Array.from({ length: 256 }, (_, i) => i)
    expect(decodeBase64url(encodeBase64url(all))).toEqual(all)
  })

  it('matches the standard encoding', () => {
    const bytes = new TextEncoder().encode('any carnal pleas\u00ff\u00fe')
    const standard = btoa(String.fromCharCode(...bytes))
      .replace(/\+/g, '-')
      .replace(/\//g, '_')
      .replace(/=+$/, '')
    expect(encodeBase64url(bytes)).toBe(standard)
  })

  it('refuses non-canonical text: unused bits set, padding, foreign characters, impossible lengths', () => {
    // 'QQ' is the canonical encoding of 'A'; 'QR'..'QT' differ only in the 4 unused bits.
    expect(decodeBase64url('QQ')).toEqual(new Uint8Array([65]))
    for (const text of ['QR', 'QS', 'QT', 'QQ==', 'Q', 'QQ+', 'QQ/', 'Q Q', 'QQé', 'QUI', 'QUJ']) {
      if (text === 'QUI') expect(decodeBase64url(text)).toEqual(new Uint8Array([65, 66]))
      else expect(decodeBase64url(text)).toBeNull()
    }
  })
})

describe('ids and keys', () => {
  it('creates 256-bit ids, 43 characters, all different', () => {
    const ids = new Set(Array.from({ length: 1000 }, createSessionId))
    expect(ids.size).toBe(1000)
    for (const id of ids) {
      expect(id).toHaveLength(43)
      expect(isSessionId(id)).toBe(true)
      expect(decodeBase64url(id)).toHaveLength(32)
    }
  })

  it('hashes an id into a storage key that does not reveal it', async () => {
    const id = createSessionId()
    const key = await hashKey(id)
    expect(key).toHaveLength(43)
    expect(key).not.toBe(id)
    expect(await hashKey(id)).toBe(key)
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(id)))
    expect(decodeBase64url(key)).toEqual(digest)
  })
})

describe('IdSigner', () => {
  it('signs <id>.<signature> and verifies it, under the first secret', async () => {
    const signer = new IdSigner([SECRET])
    const id = createSessionId()
    const value = await signer.sign(id, await hashKey(id))
    expect(value).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/)
    // A fresh signer (no cache) verifies it through Web Crypto.
    expect(await new IdSigner([SECRET]).verify(value)).toEqual({ id, key: await hashKey(id), rotated: false })
  })

  it('verifies under older secrets and reports the rotation', async () => {
    const id = createSessionId()
    const old = await new IdSigner([OLD]).sign(id, 'k')
    expect(await new IdSigner([SECRET, OLD]).verify(old)).toMatchObject({ id, rotated: true })
    expect(await new IdSigner([SECRET]).verify(old)).toBeNull()
  })

  it('refuses every altered value', async () => {
    const signer = new IdSigner([SECRET])
    const id = createSessionId()
    const value = await signer.sign(id, 'k')
    const other = await signer.sign(createSessionId(), 'k')
    const fresh = new IdSigner([SECRET])
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const last = alphabet.indexOf(value.at(-1) as string)
    const altered = [
      value.slice(0, -1),
      `${value}A`,
      value.replace('.', '-'),
      `${value.slice(44)}.${value.slice(0, 43)}`,
      `${value.slice(0, 43)}.${other.slice(44)}`,
      `${other.slice(0, 43)}.${value.slice(44)}`,
      // The same signature with its last character's unused bits set: decodes to the same bytes if not canonical.
      ...[1, 2, 3].map((flip) => value.slice(0, -1) + alphabet[last ^ flip]),
      `${value.slice(0, 42)}=.${value.slice(44)}`,
      '',
      '.',
      'x'.repeat(87),
    ]
    for (const candidate of altered) expect(await fresh.verify(candidate)).toBeNull()
    expect(await fresh.verify(value)).not.toBeNull()
  })

  it('verifies a value once: the second time costs no Web Crypto call', async () => {
    const signer = new IdSigner([SECRET])
    const value = await new IdSigner([SECRET]).sign(createSessionId(), 'k')
    const subtle = crypto.subtle
    let calls = 0
    const counting = new Proxy(subtle, {
      get(target, prop, receiver) {
        const original = Reflect.get(target, prop, receiver)
        return typeof original === 'function'
          ? (...args: unknown[]) => {
              calls++
              return original.apply(target, args)
            }
          : original
      },
    })
    Object.defineProperty(crypto, 'subtle', { value: counting, configurable: true })
    try {
      await signer.verify(value)
      const first = calls
      expect(first).toBeGreaterThan(0)
      await signer.verify(value)
      await signer.verify(value)
      expect(calls).toBe(first)
    } finally {
      Object.defineProperty(crypto, 'subtle', { value: subtle, configurable: true })
    }
  })
})

describe('BoundedCache', () => {
  it('forgets its oldest entry past the limit', () => {
    const cache = new BoundedCache<number>(3)
    for (let i = 0; i < 5; i++) cache.set(`k${i}`, i)
    expect(cache.size).toBe(3)
    expect(cache.get('k0')).toBeUndefined()
    expect(cache.get('k1')).toBeUndefined()
    expect(cache.get('k4')).toBe(4)
  })
})
