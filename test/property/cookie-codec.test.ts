/** @module Properties of the cookie codec: the Cookie header parser over any input, and chunking round trips. */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { cookieValueCandidates, MAX_COOKIE_SIZE, readCookies, splitCookieValue } from '../../src/cookie.ts'
import { anyCookieHeader, COOKIE_OCTETS, cookieValue } from './arbitraries.ts'

const NAMES = ['sid', '__Host-sid', 's', 'my.session']

/** The rule readCookies documents: the name itself, or the name, a dot and at least one more character. */
const isOurs = (key: string, name: string) =>
  key === name || (key.length > name.length + 1 && key.startsWith(name) && key[name.length] === '.')

/**
 * readCookies as its doc states it, written the plain way: split at every ';', each pair cut at its first '='.
 * The real one works in a single pass (linear on any header); the two must agree on every input.
 */
function referenceReadCookies(header: string, name: string): Array<[string, string]> {
  const found: Array<[string, string]> = []
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=')
    if (eq === -1) continue
    const key = pair.slice(0, eq).trim()
    if (!isOurs(key, name)) continue
    let value = pair.slice(eq + 1).trim()
    if (value.length >= 2 && value[0] === '"' && value[value.length - 1] === '"') value = value.slice(1, -1)
    if (key.length + value.length <= MAX_COOKIE_SIZE) found.push([key, value])
  }
  return found
}

/** Headers made of the characters the parser looks at, so pairs without '=', empty pairs and '=' in values abound. */
const separatorHeavyHeader = (name: string) =>
  fc
    .array(fc.constantFrom(';', '; ', '=', ' ', '\t', '"', name, `${name}.`, `${name}.0`, '0', 'x', 'a=b'), {
      maxLength: 80,
    })
    .map((parts) => parts.join(''))

describe('readCookies over any header', () => {
  it('agrees with the plain split-and-cut reference parser on any header', () => {
    fc.assert(
      fc.property(
        fc
          .constantFrom(...NAMES)
          .chain((name) =>
            fc.tuple(fc.constant(name), fc.oneof(anyCookieHeader(name), separatorHeavyHeader(name))),
          ),
        ([name, header]) => {
          expect(readCookies(header, name)).toEqual(referenceReadCookies(header, name))
        },
      ),
      { numRuns: 1000 },
    )
  })

  it('never throws, and returns only our cookies, trimmed, each within what a browser keeps', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...NAMES).chain((name) => fc.tuple(fc.constant(name), anyCookieHeader(name))),
        ([name, header]) => {
          const found = readCookies(header, name)
          for (const [key, value] of found) {
            expect(isOurs(key, name)).toBe(true)
            expect(key.length + value.length).toBeLessThanOrEqual(MAX_COOKIE_SIZE)
            expect(value).not.toContain(';')
            expect(value).toBe(value.trim())
          }
          // Whatever it found, joining never throws either, and tries a bounded number of values.
          const joined = [...cookieValueCandidates(name, found, 5)]
          for (const value of joined) expect(typeof value).toBe('string')
          expect(joined.length).toBeLessThanOrEqual(found.length + 2 ** 5)
        },
      ),
      { numRuns: 1000 },
    )
  })

  it('finds exactly the pairs of a well-formed header that are ours, in order, duplicates kept', () => {
    const pairName = (name: string) =>
      fc.oneof(
        fc.constantFrom(
          name,
          `${name}.0`,
          `${name}.1`,
          `${name}.x`,
          `${name}x`,
          `x${name}`,
          'other',
          `${name}.`,
        ),
        fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz._-'.split('')), minLength: 1 }),
      )
    fc.assert(
      fc.property(
        fc.constantFrom(...NAMES).chain((name) =>
          fc.tuple(
            fc.constant(name),
            fc.array(
              fc.tuple(pairName(name), cookieValue(300), fc.boolean(), fc.constantFrom(';', '; ', ' ; ')),
              {
                maxLength: 12,
              },
            ),
          ),
        ),
        ([name, pairs]) => {
          const header = pairs
            .map(
              ([key, value, quoted, separator], i) =>
                `${i === 0 ? '' : separator}${key}=${quoted ? `"${value}"` : value}`,
            )
            .join('')
          const expected = pairs
            .filter(([key, value]) => isOurs(key, name) && key.length + value.length <= MAX_COOKIE_SIZE)
            .map(([key, value]) => [key, value])
          expect(readCookies(header, name)).toEqual(expected)
        },
      ),
      { numRuns: 500 },
    )
  })
})

describe('chunked cookies', () => {
  it('split into cookies of at most 4096 bytes that reassemble exactly, in any header order', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...NAMES),
        fc.oneof(
          cookieValue(5000),
          fc
            .tuple(fc.integer({ min: 3000, max: 21_000 }), fc.constantFrom(...COOKIE_OCTETS))
            .map(([length, ch]) => ch.repeat(length)),
          fc.string({ unit: fc.constantFrom(...COOKIE_OCTETS), minLength: 4000, maxLength: 21_000 }),
        ),
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.tuple(fc.constantFrom('other', 'x', 'sidx'), cookieValue(50)), { maxLength: 4 }),
        fc.infiniteStream(fc.double({ min: 0, max: 1, noNaN: true })),
        (name, value, maxChunks, others, random) => {
          const chunks = splitCookieValue(name, value, maxChunks)
          const perChunk = MAX_COOKIE_SIZE - `${name}.${maxChunks - 1}=`.length
          if (chunks === null) {
            // Refused only when it truly does not fit.
            expect(name.length + 1 + value.length).toBeGreaterThan(MAX_COOKIE_SIZE)
            expect(value.length).toBeGreaterThan(maxChunks * perChunk)
            return
          }
          expect(chunks.length).toBeLessThanOrEqual(maxChunks)
          for (const [chunk, part] of chunks)
            expect(chunk.length + 1 + part.length).toBeLessThanOrEqual(MAX_COOKIE_SIZE)
          // Sent back in any order, mixed with other cookies.
          const pairs = [...chunks, ...others]
          const iterator = random[Symbol.iterator]()
          const shuffled = pairs
            .map((pair) => [iterator.next().value as number, pair] as const)
            .sort((a, b) => a[0] - b[0])
            .map(([, pair]) => pair)
          const header = shuffled.map(([key, part]) => `${key}=${part}`).join('; ')
          expect([...cookieValueCandidates(name, readCookies(header, name), maxChunks)][0]).toBe(value)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('never yield the value from an incomplete set of chunks, and still yield it past a repeated one', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom(...COOKIE_OCTETS), minLength: 8200, maxLength: 20_000 }),
        fc.nat(),
        fc.boolean(),
        (value, pick, repeat) => {
          const chunks = splitCookieValue('sid', value, 5) ?? []
          expect(chunks.length).toBeGreaterThan(1)
          const index = pick % chunks.length
          const broken = repeat
            ? [...chunks, [chunks[index]?.[0] as string, 'x']]
            : chunks.filter((_, i) => i !== index)
          const found = [...cookieValueCandidates('sid', broken as Array<[string, string]>, 5)]
          if (repeat) expect(found).toContain(value)
          else expect(found).not.toContain(value)
        },
      ),
      { numRuns: 200 },
    )
  })
})
