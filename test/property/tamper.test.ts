/**
 * @module Properties of cookie verification: no mutation of a valid cookie opens its session (signed ids over the
 * memory store, iron seals in the cookie store), and every valid cookie opens its own session, read by an
 * instance that has never seen it (no cache to lean on).
 */
import { createSessions, type SessionStore, type Sessions } from 'edge-session'
import { cookieStore } from 'edge-session/stores/cookie'
import { memoryStore } from 'edge-session/stores/memory'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { hashKey, IdSigner } from '../../src/crypto.ts'
import { CookieJar } from '../support/jar.ts'
import { COOKIE_OCTETS, cookieValue, sessionData } from './arbitraries.ts'

const SECRET = 'property-tamper-secret-0123456789abcdefghij'
const NOT_IN_A_HEADER = /[\0\r\n]/

type Data = Record<string, unknown>

/** A session with `{ user: 'ada' }`, its cookies, and an instance sharing the store but none of the caches. */
async function established(store: SessionStore, data: Data = { user: 'ada' }) {
  const writer = createSessions<Data>({ store, secrets: [SECRET] })
  const jar = new CookieJar()
  const session = await writer.load(jar.request())
  for (const [key, value] of Object.entries(data)) session.set(key, value)
  jar.update(await writer.commit(session, new Response()))
  const reader = createSessions<Data>({ store, secrets: [SECRET] })
  return { writer, reader, jar, session }
}

/** A cookie value changed in one of the ways an attacker or a broken proxy would change it. */
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/**
 * The segments of `value` whose last base64url character has unused low bits (RFC 4648 §3.5), with the other
 * spellings of that character: the same bytes to a lenient decoder, a different cookie to a strict one.
 */
function nonCanonicalSpellings(value: string, separator: string): string[] {
  const segments = value.split(separator)
  const spellings: string[] = []
  segments.forEach((segment, i) => {
    const unused = (segment.length * 6) % 8
    const digit = BASE64URL.indexOf(segment.at(-1) ?? '')
    if (unused === 0 || digit < 0 || ![...segment].every((ch) => BASE64URL.includes(ch))) return
    for (let low = 1; low < 1 << unused; low++) {
      const changed = [...segments]
      changed[i] = segment.slice(0, -1) + BASE64URL.charAt(digit ^ low)
      spellings.push(changed.join(separator))
    }
  })
  return spellings
}

function mutation(value: string, separator: string): fc.Arbitrary<string> {
  const last = value.length - 1
  const segments = value.split(separator)
  const spellings = nonCanonicalSpellings(value, separator)
  return fc.oneof(
    ...(spellings.length > 0 ? [fc.constantFrom(...spellings)] : []),
    fc
      .tuple(fc.nat(last), fc.integer({ min: 0, max: 7 }))
      .map(
        ([i, bit]) =>
          value.slice(0, i) + String.fromCharCode(value.charCodeAt(i) ^ (1 << bit)) + value.slice(i + 1),
      ),
    fc
      .tuple(fc.nat(last), fc.constantFrom(...COOKIE_OCTETS))
      .map(([i, ch]) => value.slice(0, i) + ch + value.slice(i + 1)),
    fc.nat(last).map((k) => value.slice(0, k)),
    fc.nat(last).map((k) => value.slice(k + 1)),
    fc.nat(last).map((k) => value.slice(0, k) + value.slice(k + 1)),
    cookieValue(20).map((extra) => value + (extra || 'A')),
    cookieValue(20).map((extra) => (extra || 'A') + value),
    fc.tuple(fc.nat(segments.length - 1), fc.nat(segments.length - 1)).map(([i, j]) => {
      const swapped = [...segments]
      ;[swapped[i], swapped[j]] = [segments[j] as string, segments[i] as string]
      return swapped.join(separator)
    }),
    fc.nat(segments.length - 1).map((i) => segments.filter((_, k) => k !== i).join(separator)),
    fc
      .nat(segments.length - 1)
      .map((i) => [...segments.slice(0, i + 1), ...segments.slice(i)].join(separator)),
  )
}

async function expectFresh(reader: Sessions<Data>, cookie: string, originalId: string) {
  const session = await reader.load(new Request('https://app.example/', { headers: { cookie } }))
  expect(session.isNew).toBe(true)
  expect(session.id).not.toBe(originalId)
  expect(session.get('user')).toBeUndefined()
}

describe.each([
  ['memory (signed id)', () => memoryStore(), '.'],
  ['cookie (sealed)', () => cookieStore(), '*'],
] as const)('a tampered cookie never opens the session: %s store', (_, createStore, separator) => {
  it('whatever the mutation: bit flips, non-canonical base64url, truncation, extension, swapped, dropped or repeated segments', async () => {
    const { reader, jar, session } = await established(createStore())
    const value = jar.get('sid') as string
    expect(value).toBeDefined()
    // The signature (and every base64url part of a seal) has unused bits to play with: mutated below.
    expect(nonCanonicalSpellings(value, separator).length).toBeGreaterThan(0)
    await fc.assert(
      fc.asyncProperty(mutation(value, separator), async (mutated) => {
        fc.pre(mutated !== value && !NOT_IN_A_HEADER.test(mutated))
        await expectFresh(reader, `sid=${mutated}`, session.id)
      }),
      { numRuns: 400 },
    )
    // The original still opens: the store was not disturbed by the attempts.
    expect((await reader.load(jar.request())).get('user')).toBe('ada')
  })

  it('under another secret', async () => {
    const store = createStore()
    const { reader, session } = await established(store)
    const otherSecret = fc.string({ minLength: 32, maxLength: 64 }).filter((secret) => secret !== SECRET)
    await fc.assert(
      fc.asyncProperty(otherSecret, async (other) => {
        let forged: string
        if (store.kind === 'cookie') {
          forged = await store.createSealer([other]).seal({
            id: session.id,
            data: { user: 'ada' },
            meta: {
              createdAt: session.createdAt,
              lastSeenAt: session.createdAt,
              expiresAt: session.expiresAt,
            },
          })
        } else {
          forged = await new IdSigner([other]).sign(session.id, await hashKey(session.id))
        }
        await expectFresh(reader, `sid=${forged}`, session.id)
      }),
      { numRuns: 60 },
    )
  })
})

describe('a tampered chunked seal never opens the session', () => {
  it('whatever chunk is changed, dropped or swapped', async () => {
    const { reader, jar, session } = await established(cookieStore(), { user: 'ada', pad: 'x'.repeat(9000) })
    const chunks = [...jar.cookies]
    expect(chunks.length).toBeGreaterThan(2)
    expect(chunks.map(([name]) => name)).toEqual(chunks.map((_, i) => `sid.${i}`))
    expect((await reader.load(jar.request())).get('user')).toBe('ada')
    const header = (pairs: Array<[string, string]>) =>
      pairs.map(([name, part]) => `${name}=${part}`).join('; ')
    const tampered = fc.oneof(
      fc
        .nat(chunks.length - 1)
        .chain((i) =>
          mutation(chunks[i]?.[1] as string, '*').map((part) =>
            chunks.map(([name, old], k): [string, string] => [name, k === i ? part : old]),
          ),
        ),
      fc.nat(chunks.length - 1).map((i) => chunks.filter((_, k) => k !== i)),
      fc
        .tuple(fc.nat(chunks.length - 1), fc.nat(chunks.length - 1))
        .map(([i, j]) =>
          chunks.map(([name], k): [string, string] => [
            name,
            (k === i ? chunks[j]?.[1] : k === j ? chunks[i]?.[1] : chunks[k]?.[1]) as string,
          ]),
        ),
    )
    await fc.assert(
      fc.asyncProperty(tampered, async (pairs) => {
        const cookie = header(pairs)
        fc.pre(cookie !== jar.header() && !NOT_IN_A_HEADER.test(cookie))
        await expectFresh(reader, cookie, session.id)
      }),
      { numRuns: 150 },
    )
  })
})

describe('cookies a user did not choose cannot push a sealed session out', () => {
  it('a duplicated or stray chunk, anywhere in the header, never stops the genuine run from opening', async () => {
    const { reader, jar, session } = await established(cookieStore(), { user: 'ada', pad: 'x'.repeat(9000) })
    const chunks = [...jar.cookies]
    const junk = fc.tuple(
      fc.constantFrom(...chunks.map(([name]) => name), 'sid.3', 'sid.4', 'sid'),
      fc.stringMatching(/^[A-Za-z0-9*_.-]{1,60}$/),
    )
    await fc.assert(
      fc.asyncProperty(fc.array(junk, { maxLength: 1 }), fc.nat(), async (extra, at) => {
        // One planted value per name at most besides the genuine one (two values per index are tried).
        const pairs = [...chunks]
        for (const pair of extra) pairs.splice(at % (pairs.length + 1), 0, pair as [string, string])
        const header = pairs.map(([name, part]) => `${name}=${part}`).join('; ')
        const opened = await reader.load(new Request('https://app.example/', { headers: { cookie: header } }))
        expect(opened.isNew).toBe(false)
        expect(opened.id).toBe(session.id)
        expect(opened.get('user')).toBe('ada')
      }),
      { numRuns: 150 },
    )
  })
})

describe.each([
  ['memory (signed id)', () => memoryStore()],
  ['cookie (sealed)', () => cookieStore()],
] as const)('a valid cookie always opens its own session: %s store', (_, createStore) => {
  it('for any data, read back by an instance that has never seen the cookie', async () => {
    const store = createStore()
    const big = fc.option(fc.string({ minLength: 2000, maxLength: 9000 }), { nil: undefined })
    await fc.assert(
      fc.asyncProperty(sessionData(8, 1), big, async (data, pad) => {
        const all = pad === undefined ? data : { ...data, pad }
        const { reader, jar, session } = await established(store, all)
        const opened = await reader.load(jar.request())
        expect(opened.isNew).toBe(false)
        expect(opened.id).toBe(session.id)
        expect(opened.all()).toEqual(all)
      }),
      { numRuns: 120 },
    )
  })
})
