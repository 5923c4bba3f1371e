/**
 * @module Properties of `sessions.load` and `commit` over any Cookie header, for a signed-id store (memory) and the
 * sealed cookie store: never an exception, always a session, and never a session other than the one a valid
 * cookie in the header names.
 */
import { createSessions, type SessionStore } from 'edge-session'
import { cookieStore } from 'edge-session/stores/cookie'
import { memoryStore } from 'edge-session/stores/memory'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CookieJar } from '../support/jar.ts'
import { anyCookieHeader, asHeaderValue } from './arbitraries.ts'

const SECRET = 'property-load-secret-0123456789abcdefghijkl'

const stores: Array<[string, () => SessionStore]> = [
  ['memory (signed id)', () => memoryStore()],
  ['cookie (sealed)', () => cookieStore()],
]

function requestWith(cookie: string): Request {
  return new Request('https://app.example/', { headers: { cookie } })
}

describe.each(stores)('sessions.load over any Cookie header: %s store', (_, createStore) => {
  it('never throws, gives a fresh empty session, and commits it without error', async () => {
    const sessions = createSessions<Record<string, unknown>>({ store: createStore(), secrets: [SECRET] })
    await fc.assert(
      fc.asyncProperty(anyCookieHeader('sid').map(asHeaderValue), async (header) => {
        const session = await sessions.load(requestWith(header))
        expect(session.isNew).toBe(true)
        expect(session.all()).toEqual({})
        const response = await sessions.commit(session, new Response('ok'))
        // Nothing to keep: at most the clearing of cookies the request carried, never a live one.
        for (const line of response.headers.getSetCookie()) expect(line).toMatch(/; Max-Age=0(;|$)/)
        // And it still works as a session.
        session.set('n', 1)
        const written = await sessions.commit(session, new Response('ok'))
        expect(written.headers.getSetCookie().some((line) => !/Max-Age=0/.test(line))).toBe(true)
      }),
      { numRuns: 250 },
    )
  })

  it('opens, from a header mixing a valid cookie with junk, only that session or a fresh one', async () => {
    const sessions = createSessions<Record<string, unknown>>({ store: createStore(), secrets: [SECRET] })
    const jar = new CookieJar()
    const first = await sessions.load(jar.request())
    first.set('user', 'ada')
    jar.update(await sessions.commit(first, new Response()))
    const valid = jar.header()
    expect((await sessions.load(requestWith(valid))).id).toBe(first.id)
    let opened = 0
    await fc.assert(
      fc.asyncProperty(
        fc.array(anyCookieHeader('sid').map(asHeaderValue), { maxLength: 4 }),
        fc.nat(),
        fc.constantFrom('; ', ';', ''),
        async (junk, at, separator) => {
          const parts = [...junk]
          parts.splice(at % (parts.length + 1), 0, valid)
          const session = await sessions.load(requestWith(parts.join(separator)))
          if (session.isNew) {
            expect(session.all()).toEqual({})
            expect(session.id).not.toBe(first.id)
          } else {
            expect(session.id).toBe(first.id)
            expect(session.all()).toEqual({ user: 'ada' })
            opened++
          }
        },
      ),
      { numRuns: 250 },
    )
    // Junk that leaves the valid cookie whole must not hide it: many of the runs open it.
    expect(opened).toBeGreaterThan(25)
  })
})
