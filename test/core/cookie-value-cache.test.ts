/** @module CookieValueCache: results filed under a short slice of a value's MAC, answered only for the whole value. */
import { describe, expect, it } from 'vitest'
import { CookieValueCache, createSessionId, IdSigner } from '../../src/crypto.ts'

const SECRET = 'a-secret-of-at-least-32-characters-0123'

describe('CookieValueCache', () => {
  it('answers for the value it was given, from its MAC at a position or from the end', () => {
    const fromStart = new CookieValueCache<number>(10, 4)
    fromStart.set('id..0123456789abcdefREST', 1)
    expect(fromStart.get('id..0123456789abcdefREST')).toBe(1)
    const fromEnd = new CookieValueCache<number>(10, -16)
    fromEnd.set('Fe26.2*body*0123456789abcdef', 2)
    expect(fromEnd.get('Fe26.2*body*0123456789abcdef')).toBe(2)
  })

  it('misses a different value that shares the slice, and a later set replaces the entry', () => {
    const cache = new CookieValueCache<string>(10, -16)
    cache.set('Fe26.2*real-body*0123456789abcdef', 'real')
    expect(cache.get('Fe26.2*forged-body*0123456789abcdef')).toBeUndefined()
    cache.set('Fe26.2*other*0123456789abcdef', 'other')
    expect(cache.get('Fe26.2*other*0123456789abcdef')).toBe('other')
    expect(cache.get('Fe26.2*real-body*0123456789abcdef')).toBeUndefined()
  })

  it('stays within its limit, forgetting the oldest entries', () => {
    const cache = new CookieValueCache<number>(2, -16)
    for (let i = 0; i < 3; i++) cache.set(`value-${i}-${String(i).repeat(16)}`, i)
    expect(cache.get(`value-0-${'0'.repeat(16)}`)).toBeUndefined()
    expect(cache.get(`value-2-${'2'.repeat(16)}`)).toBe(2)
  })
})

describe('IdSigner.cached', () => {
  it('knows a value it signed, and not the same signature under another id', async () => {
    const signer = new IdSigner([SECRET])
    const id = createSessionId()
    const value = await signer.sign(id, 'key')
    expect(signer.cached(value)).toEqual({ id, key: 'key', rotated: false })
    const otherId = `${createSessionId()}${value.slice(43)}`
    expect(signer.cached(otherId)).toBeUndefined()
    expect(await signer.verify(otherId)).toBeNull()
    // The forged value did not displace the real one.
    expect(signer.cached(value)).toEqual({ id, key: 'key', rotated: false })
  })

  it('knows nothing before a value is signed or verified', async () => {
    const value = await new IdSigner([SECRET]).sign(createSessionId(), 'key')
    const fresh = new IdSigner([SECRET])
    expect(fresh.cached(value)).toBeUndefined()
    expect(await fresh.verify(value)).toMatchObject({ key: expect.any(String), rotated: false })
    expect(fresh.cached(value)).toMatchObject({ rotated: false })
  })
})
