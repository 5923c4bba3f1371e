/** @module The cookie codec: parsing Cookie headers, serializing Set-Cookie, chunking. */

import { describe, expect, it } from 'vitest'
import {
  cookieValueCandidates,
  maxAgeAttribute,
  ownCookieNames,
  readCookies,
  serializeAttributes,
  splitCookieValue,
} from '../../src/cookie.ts'
import { SetCookieWriter } from '../../src/set-cookie.ts'

/** The values of the cookies named exactly `name`. */
const valuesOf = (header: string | null, name: string) =>
  readCookies(header, name)
    .filter(([key]) => key === name)
    .map(([, value]) => value)

describe('readCookies', () => {
  it('finds the named cookie and its chunks, in order, duplicates kept', () => {
    const header = 'a=1; sid=x; other=2;sid.0=c0 ; sid.1=c1; sidx=no; sid=y; s.id=no'
    expect(readCookies(header, 'sid')).toEqual([
      ['sid', 'x'],
      ['sid.0', 'c0'],
      ['sid.1', 'c1'],
      ['sid', 'y'],
    ])
    expect(valuesOf(header, 'sid')).toEqual(['x', 'y'])
  })

  it('takes each pair at its own first =, whatever the pairs around it hold', () => {
    // Pairs without '=' before ours, a value holding '=', and an '=' only in a later pair.
    expect(readCookies('x; y;sid=a=b; z ;sid.0 = "c=" ; w', 'sid')).toEqual([
      ['sid', 'a=b'],
      ['sid.0', 'c='],
    ])
    expect(readCookies('sid; sid.1; x=sid', 'sid')).toEqual([])
    expect(readCookies(`${'sid;'.repeat(1000)}sid=1`, 'sid')).toEqual([['sid', '1']])
  })

  it('never throws and skips what is malformed', () => {
    const headers = [
      null,
      '',
      ';;;',
      'sid',
      '=sid',
      'sid=',
      'sid="q"',
      'sid=%ZZ',
      `sid=${'a'.repeat(5000)}`,
      '\u0000sid=1',
    ]
    const results = headers.map((header) => valuesOf(header, 'sid'))
    expect(results).toEqual([[], [], [], [], [], [''], ['q'], ['%ZZ'], [], []])
  })
})

describe('Set-Cookie', () => {
  it('writes every attribute', () => {
    const writer = new SetCookieWriter({
      name: 'sid',
      domain: 'example.com',
      path: '/',
      httpOnly: true,
      secure: true,
      sameSite: 'Strict',
      partitioned: true,
    })
    expect(writer.cookie('sid', 'v', 60_700, 'https://example.com/')).toBe(
      'sid=v; Max-Age=61; Domain=example.com; Path=/; HttpOnly; Secure; SameSite=Strict; Partitioned',
    )
  })

  it('caps Max-Age at 400 days and deletes with Max-Age=0 and a past Expires', () => {
    expect(maxAgeAttribute(10 ** 10)).toBe(`; Max-Age=${400 * 24 * 3600}`)
    expect(maxAgeAttribute(0)).toBe('; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT')
    expect(maxAgeAttribute(-5)).toMatch(/Max-Age=0/)
    expect(maxAgeAttribute(undefined)).toBe('')
  })

  it('refuses attributes a browser would misread', () => {
    expect(() => serializeAttributes({ path: '/;Domain=evil' })).toThrow(TypeError)
    expect(() => serializeAttributes({ domain: 'x\ny' })).toThrow(TypeError)
  })
})

describe('chunks', () => {
  it('keeps a value that fits in one cookie as is', () => {
    expect(splitCookieValue('sid', 'abc', 5)).toEqual([['sid', 'abc']])
  })

  it('splits into cookies of at most 4096 bytes and joins them back exactly', () => {
    for (const length of [4093, 4094, 8000, 16_000, 20_000]) {
      const value = Array.from({ length }, (_, i) => 'abcdefghij'[i % 10]).join('')
      const chunks = splitCookieValue('sid', value, 5)
      if (!chunks) throw new Error(`no chunks for ${length}`)
      for (const [name, part] of chunks) expect(name.length + 1 + part.length).toBeLessThanOrEqual(4096)
      expect([...cookieValueCandidates('sid', chunks, 5)][0]).toBe(value)
      expect([...cookieValueCandidates('sid', [...chunks].reverse(), 5)][0]).toBe(value)
    }
  })

  it('refuses more chunks than allowed, and joins nothing from a gap or from names not ours', () => {
    const candidates = (cookies: Array<[string, string]>) => [...cookieValueCandidates('sid', cookies, 5)]
    expect(splitCookieValue('sid', 'x'.repeat(30_000), 5)).toBeNull()
    const chunks = splitCookieValue('sid', 'y'.repeat(9000), 5) ?? []
    expect(candidates(chunks.slice(1))).toEqual([])
    expect(candidates([['sid.9', 'z']])).toEqual([])
    expect(
      candidates([
        ['sid.01', 'z'],
        ['sid.1', 'z'],
      ]),
    ).toEqual([])
    expect(candidates([])).toEqual([])
  })

  it('finds the genuine run past duplicated and stray chunks, two values per index at most', () => {
    const value = 'v'.repeat(4000) + 'w'.repeat(4000) + 'x'.repeat(1000)
    const chunks = splitCookieValue('sid', value, 5) ?? []
    expect(chunks).toHaveLength(3)
    const forged: Array<[string, string]> = [
      ['sid.0', 'forged'],
      ['sid.1', 'forged'],
      ['sid.4', 'stray'],
    ]
    const found = [...cookieValueCandidates('sid', [...forged, ...chunks, ['sid.3', 'past the run']], 5)]
    expect(found).toContain(value)
    // A third value for an index is never tried: a flood of duplicates cannot multiply the work.
    const flood = Array.from({ length: 50 }, (_, i): [string, string] => ['sid.0', `f${i}`])
    expect([...cookieValueCandidates('sid', [...flood, ...chunks], 5)]).not.toContain(value)
    expect([...cookieValueCandidates('sid', [...flood, ...chunks], 5)].length).toBeLessThanOrEqual(8)
  })

  it("clears only names of the session's own shape, each once", () => {
    const cookies: Array<[string, string]> = [
      ['sid', 'a'],
      ['sid', 'b'],
      ['sid.0', 'c'],
      ['sid.4', 'd'],
      ['sid.5', 'e'],
      ['sid.00', 'f'],
      ['sid.x', 'g'],
    ]
    expect(ownCookieNames('sid', cookies, 5)).toEqual(['sid', 'sid.0', 'sid.4'])
  })
})
