/**
 * @module Round-trip properties of the primitives: base64url (one text per byte string), HMAC sign/verify, signed
 * ids, and iron seal/unseal of any JSON session, under the first secret and an older one.
 */
import type { SealedSession } from 'edge-session'
import { cookieStore } from 'edge-session/stores/cookie'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  createSessionId,
  decodeBase64url,
  encodeBase64url,
  hashKey,
  hmacSign,
  hmacVerify,
  IdSigner,
  importHmacKey,
} from '../../src/crypto.ts'
import { sessionData } from './arbitraries.ts'

const SECRET = 'property-roundtrip-secret-0123456789abcdefg'
const OLD = 'property-roundtrip-old-secret-0123456789abc'

describe('base64url', () => {
  it('decodes what it encodes, for any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const text = encodeBase64url(bytes)
        expect(text).toMatch(/^[A-Za-z0-9_-]*$/)
        expect(decodeBase64url(text)).toEqual(bytes)
      }),
      { numRuns: 1000 },
    )
  })

  it('never throws on any text, and accepts only the one canonical text of each byte string', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 80 }),
          fc.string({ unit: fc.constantFrom(...'AQgw_-=+/ .'.split('')), maxLength: 80 }),
        ),
        (text) => {
          const bytes = decodeBase64url(text)
          if (bytes !== null) expect(encodeBase64url(bytes)).toBe(text)
        },
      ),
      { numRuns: 2000 },
    )
  })
})

describe('HMAC', () => {
  it('verifies its own signature of any text, and no other text or key', async () => {
    const [key, other] = await Promise.all([importHmacKey(SECRET), importHmacKey(OLD)])
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: 'binary' }),
        fc.string({ unit: 'binary' }),
        async (data, different) => {
          const signature = await hmacSign(key, data)
          expect(await hmacVerify(key, data, signature)).toBe(true)
          expect(await hmacVerify(other, data, signature)).toBe(false)
          if (different !== data) expect(await hmacVerify(key, different, signature)).toBe(false)
        },
      ),
      { numRuns: 200 },
    )
  })

  it('signs ids that verify to the same id and storage key, under every secret, reporting rotation', async () => {
    const current = new IdSigner([SECRET])
    const older = new IdSigner([OLD])
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 32, maxLength: 32 }), async (bytes) => {
        const id = encodeBase64url(bytes)
        const key = await hashKey(id)
        // A separate verifier: the signer's own cache would answer without any crypto.
        const verifier = new IdSigner([SECRET, OLD])
        expect(await verifier.verify(await current.sign(id, key))).toEqual({ id, key, rotated: false })
        expect(await verifier.verify(await older.sign(id, key))).toEqual({ id, key, rotated: true })
        expect(await new IdSigner([SECRET]).verify(await older.sign(id, key))).toBeNull()
      }),
      { numRuns: 100 },
    )
  })
})

describe('iron seals', () => {
  const meta = fc
    .tuple(
      fc.integer({ min: 0, max: 2 ** 45 }),
      fc.integer({ min: 0, max: 2 ** 45 }),
      fc.integer({ min: 0, max: 2 ** 45 }),
      fc.option(fc.array(fc.string(), { minLength: 1, maxLength: 3 }), { nil: undefined }),
    )
    .map(([createdAt, lastSeenAt, expiresAt, flash]) => ({
      createdAt,
      lastSeenAt,
      expiresAt,
      ...(flash ? { flash } : {}),
    }))
  const sealed = fc
    .tuple(fc.oneof(fc.constant(null), fc.string()), sessionData(10), meta)
    .map(([id, data, m]): SealedSession => ({ id: id ?? createSessionId(), data, meta: m }))

  it('unseal what they seal, for any JSON session, under the first secret and an older one', async () => {
    const store = cookieStore()
    const current = store.createSealer([SECRET, OLD])
    const older = store.createSealer([OLD])
    await fc.assert(
      fc.asyncProperty(sealed, async (session) => {
        const value = await current.seal(session)
        expect(value).toMatch(/^Fe26\.2\*/)
        expect(await current.unseal(value)).toEqual({ session, rotated: false })
        expect(await current.unseal(await older.seal(session))).toEqual({ session, rotated: true })
        // A sealer without the secret opens nothing.
        expect(await older.unseal(value)).toBeNull()
      }),
      { numRuns: 150 },
    )
  })

  it('seal the same session differently every time (random IV), each opening to the same session', async () => {
    const sealer = cookieStore().createSealer([SECRET])
    await fc.assert(
      fc.asyncProperty(sealed, async (session) => {
        const [a, b] = await Promise.all([sealer.seal(session), sealer.seal(session)])
        expect(a).not.toBe(b)
        expect((await sealer.unseal(a))?.session).toEqual((await sealer.unseal(b))?.session)
      }),
      { numRuns: 50 },
    )
  })
})
