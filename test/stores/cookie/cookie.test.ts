/** @module The sealed cookie store: conformance, iron compatibility, chunking, size limit, tampering. */

import { createSessions } from 'edge-session'
import { cookieStore } from 'edge-session/stores/cookie'
import { defaults, unseal } from 'iron-webcrypto'
import { describe, expect, it } from 'vitest'
import { describeStoreConformance } from '../../shared/conformance.ts'
import { CookieJar } from '../../support/jar.ts'

describeStoreConformance({ name: 'cookie', kind: 'cookie', createStore: () => cookieStore() })

const SECRET = 'cookie-store-secret-0123456789abcdefghij'

async function commitWith(data: Record<string, unknown>, jar = new CookieJar(), store = cookieStore()) {
  const sessions = createSessions({ store, secrets: [SECRET] })
  const s = await sessions.load(jar.request())
  for (const [key, value] of Object.entries(data)) s.set(key, value)
  const response = await sessions.commit(s, new Response())
  return { sessions, jar, setCookies: jar.update(response), session: s }
}

describe('cookieStore', () => {
  it('writes standard iron seals that iron-webcrypto itself unseals with the secret', async () => {
    const { jar, session } = await commitWith({ user: 'ada', n: 1.5 })
    const sealed = jar.get('sid') as string
    expect(sealed.startsWith('Fe26.2*')).toBe(true)
    const opened = (await unseal(sealed, { [sealed.split('*')[1] as string]: SECRET }, defaults)) as {
      i: string
      d: unknown
    }
    expect(opened.i).toBe(session.id)
    expect(opened.d).toEqual({ user: 'ada', n: 1.5 })
  })

  it('splits a large session into numbered cookies of at most 4096 bytes, and reads it back exactly', async () => {
    const big = 'x'.repeat(9000)
    const { jar, setCookies, sessions } = await commitWith({ big })
    expect([...jar.cookies.keys()]).toEqual(['sid.0', 'sid.1', 'sid.2', 'sid.3'])
    for (const [name, value] of jar.cookies) expect(name.length + 1 + value.length).toBeLessThanOrEqual(4096)
    expect(setCookies).toHaveLength(4)
    const s = await sessions.load(jar.request())
    expect(s.get('big')).toBe(big)
    // Shrinking clears the chunks it no longer needs.
    s.set('big', 'small')
    const shrunk = jar.update(await sessions.commit(s, new Response()))
    expect([...jar.cookies.keys()]).toEqual(['sid'])
    expect(shrunk.filter((line) => /Max-Age=0/.test(line)).map((line) => line.split('=')[0])).toEqual([
      'sid.0',
      'sid.1',
      'sid.2',
      'sid.3',
    ])
    expect((await sessions.load(jar.request())).get('big')).toBe('small')
  })

  it('rejects a session too large for 5 cookies with ERR_TOO_LARGE, adding no cookie', async () => {
    const sessions = createSessions({ store: cookieStore(), secrets: [SECRET] })
    const s = await sessions.load(new Request('https://app.example/'))
    s.set('big', crypto.randomUUID().repeat(700))
    const response = new Response()
    await expect(sessions.commit(s, response)).rejects.toMatchObject({ code: 'ERR_TOO_LARGE' })
    expect(response.headers.getSetCookie()).toEqual([])
  })

  it('opens the genuine run past a repeated or stray chunk', async () => {
    const { jar, sessions } = await commitWith({ big: 'y'.repeat(6000) })
    const chunks = [...jar.cookies]
    const cases: Array<Array<[string, string]>> = [
      [...chunks, chunks[0] as [string, string]],
      [[chunks[0]?.[0] as string, 'forged'], ...chunks],
      [...chunks, ['sid.4', 'stray']],
      [['sid', 'garbage'], ...chunks, [`sid.${chunks.length}`, 'past the run']],
    ]
    for (const cookies of cases) {
      const header = cookies.map(([name, value]) => `${name}=${value}`).join('; ')
      const s = await sessions.load(new Request('https://app.example/', { headers: { cookie: header } }))
      expect(s.isNew).toBe(false)
      expect(s.get('big')).toBe('y'.repeat(6000))
      // Opened and unchanged: nothing is cleared, nothing written.
      const response = await sessions.commit(s, new Response())
      expect(response.headers.getSetCookie()).toEqual([])
    }
  })

  it('gives a fresh session when chunks are missing or out of place', async () => {
    const { jar, sessions } = await commitWith({ big: 'y'.repeat(6000) })
    const chunks = [...jar.cookies]
    const cases: Array<Array<[string, string]>> = [
      chunks.slice(1),
      [chunks[0] as [string, string]],
      chunks.map(([name], i) => [name, (chunks[(i + 1) % chunks.length] as [string, string])[1]]),
    ]
    for (const cookies of cases) {
      const header = cookies.map(([name, value]) => `${name}=${value}`).join('; ')
      const s = await sessions.load(new Request('https://app.example/', { headers: { cookie: header } }))
      expect(s.isNew).toBe(true)
    }
  })

  it('refuses a seal whose last character differs only in unused bits (non-canonical base64url)', async () => {
    const { jar, sessions } = await commitWith({ user: 'ada' })
    const sealed = jar.get('sid') as string
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const last = alphabet.indexOf(sealed.at(-1) as string)
    // A 32-byte MAC is 43 characters: the last holds 4 bits and 2 unused ones.
    const variants = [1, 2, 3].map((flip) => sealed.slice(0, -1) + alphabet[last ^ flip])
    for (const value of variants) {
      const s = await sessions.load(
        new Request('https://app.example/', { headers: { cookie: `sid=${value}` } }),
      )
      expect(s.isNew).toBe(true)
    }
    const original = await sessions.load(
      new Request('https://app.example/', { headers: { cookie: `sid=${sealed}` } }),
    )
    expect(original.get('user')).toBe('ada')
  })

  it('opens nothing sealed under another secret', async () => {
    const { jar } = await commitWith({ user: 'ada' })
    const other = createSessions({
      store: cookieStore(),
      secrets: ['another-secret-0123456789abcdefghijklm'],
    })
    expect((await other.load(jar.request())).isNew).toBe(true)
  })

  it('refuses maxChunks outside 1 to 5', () => {
    for (const maxChunks of [0, 6, 2.5]) {
      expect(() => cookieStore({ maxChunks })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }))
    }
  })
})
