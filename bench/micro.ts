/**
 * @module Micro figures: the cost of each primitive a request may pay (id generation, hashing, signing,
 * verifying, sealing, unsealing), and of loading a session with and without the caches that spare them.
 */

import { createSessions } from 'edge-session'
import { cookieStore } from 'edge-session/stores/cookie'
import { memoryStore } from 'edge-session/stores/memory'
import { readCookies } from '../src/cookie.ts'
import { createSessionId, hashKey, IdSigner } from '../src/crypto.ts'
import { median, perCall } from './stats.ts'
import { SECRET } from './subjects.ts'

export interface MicroOptions {
  /** Rounds; the median is reported. */
  rounds: number
  /** Calls per round for operations that use Web Crypto (or make a new value each call). */
  cryptoOps: number
  /** Calls per round for in-memory operations. */
  fastOps: number
}

export interface MicroRow {
  name: string
  /** Median µs per call, calls awaited one after another. */
  us: number
  note: string
}

const ORIGIN = 'https://app.example/'

/** A cookie header value (name=value pairs) from a response's Set-Cookie lines. */
function cookieHeader(response: Response): string {
  return response.headers
    .getSetCookie()
    .map((line) => line.slice(0, line.indexOf(';')))
    .join('; ')
}

/** `n` sessions committed by `sessions`, as the requests a browser would send back. */
async function requestsWithSessions(
  sessions: ReturnType<typeof createSessions<{ count?: number; user?: string }>>,
  n: number,
): Promise<Request[]> {
  const requests: Request[] = []
  for (let i = 0; i < n; i++) {
    const session = await sessions.load(new Request(ORIGIN))
    session.set('user', 'ada')
    session.set('count', i)
    const response = await sessions.commit(session, new Response(null))
    requests.push(new Request(ORIGIN, { headers: { cookie: cookieHeader(response) } }))
  }
  return requests
}

/**
 * A hostile `Cookie` header of about `bytes`: short pairs with no '=' (what made a per-pair search for '=' run to
 * the header's end, quadratic), then the session cookie, so the parser cannot stop early.
 */
function floodedCookieHeader(bytes: number): string {
  // Joined, so the string is flat, as a header read from a request is.
  const header = [...Array.from({ length: Math.ceil(bytes / 3) }, () => 'x'), 'sid=v'].join('; ')
  const found = readCookies(header, 'sid')
  if (found.length !== 1 || found[0]?.[1] !== 'v')
    throw new Error('readCookies missed the cookie after the flood')
  return header
}

/**
 * Measures each primitive over `rounds` rounds and reports the median. "Uncached" figures use values the
 * measuring instance has never seen (made by another instance with the same secrets); "cached" ones repeat them.
 */
export async function measureMicro(options: MicroOptions): Promise<MicroRow[]> {
  const { rounds, cryptoOps, fastOps } = options
  const results = new Map<string, { values: number[]; note: string }>()
  const record = (name: string, note: string, ms: number) => {
    const entry = results.get(name) ?? { values: [], note }
    entry.values.push(ms * 1000)
    results.set(name, entry)
  }

  const signer = new IdSigner([SECRET])
  const sealer = cookieStore().createSealer([SECRET])
  const sealed = { id: createSessionId(), data: { user: 'ada', count: 1 }, meta: meta() }
  const header100k = floodedCookieHeader(100 * 1024)
  const header1m = floodedCookieHeader(1024 * 1024)
  // Parse calls per round: about as long as fastOps in-memory calls, at least one.
  const parseOps = Math.max(1, Math.round(fastOps / 200))
  const parseRatios: number[] = []
  for (let round = 0; round < rounds; round++) {
    const small = await perCall(parseOps, () => readCookies(header100k, 'sid'))
    const large = await perCall(Math.max(1, Math.round(parseOps / 10)), () => readCookies(header1m, 'sid'))
    record('readCookies, 100 KiB header', "short pairs without '=', then the session cookie", small)
    record('readCookies, 1 MiB header', '', large)
    parseRatios.push(large / small)
    record('createSessionId', '32 random bytes, base64url', await perCall(fastOps, () => createSessionId()))
    const ids = Array.from({ length: cryptoOps }, () => createSessionId())
    record(
      'hashKey (SHA-256)',
      'storage key of an id: one Web Crypto digest',
      await perCall(cryptoOps, (i) => hashKey(ids[i] as string)),
    )
    const values: string[] = []
    record(
      'IdSigner.sign',
      'HMAC-SHA256 of an id: one Web Crypto call',
      await perCall(cryptoOps, async (i) => values.push(await signer.sign(ids[i] as string, 'key'))),
    )
    const verifier = new IdSigner([SECRET])
    record(
      'IdSigner.verify, uncached',
      'a value this instance has not seen: HMAC verify, then SHA-256 of the id',
      await perCall(cryptoOps, (i) => verifier.verify(values[i] as string)),
    )
    record(
      'IdSigner.verify, cached',
      'the same values again: no crypto',
      await perCall(cryptoOps, (i) => verifier.verify(values[i] as string)),
    )
    const seals: string[] = []
    record(
      'seal (iron, keys derived once)',
      'AES-256-CBC, then HMAC-SHA256: two Web Crypto calls in sequence',
      await perCall(cryptoOps, async () => seals.push(await sealer.seal(sealed))),
    )
    record(
      'unseal',
      'HMAC verify, then AES-256-CBC decrypt: two Web Crypto calls',
      await perCall(cryptoOps, (i) => sealer.unseal(seals[i] as string)),
    )

    // Whole loads, as a request pays them: cookie parsing, cache, store, Session object.
    const maker = createSessions<{ count?: number; user?: string }>({
      store: cookieStore(),
      secrets: [SECRET],
    })
    const cookieRequests = await requestsWithSessions(maker, cryptoOps)
    const cookieSessions = createSessions({ store: cookieStore(), secrets: [SECRET] })
    record(
      'load, sealed cookie, uncached',
      'a seal this instance has not opened: unseal, then the Session',
      await perCall(cryptoOps, (i) => cookieSessions.load(cookieRequests[i] as Request)),
    )
    record(
      'load, sealed cookie, cached',
      'the same cookies again: no crypto',
      await perCall(cryptoOps, (i) => cookieSessions.load(cookieRequests[i] as Request)),
    )
    const store = memoryStore()
    const memoryMaker = createSessions<{ count?: number; user?: string }>({ store, secrets: [SECRET] })
    const memoryRequests = await requestsWithSessions(memoryMaker, cryptoOps)
    const memorySessions = createSessions({ store, secrets: [SECRET] })
    record(
      'load, memory store, uncached',
      'a signed id this instance has not verified: verify + SHA-256, then the store',
      await perCall(cryptoOps, (i) => memorySessions.load(memoryRequests[i] as Request)),
    )
    record(
      'load, memory store, cached',
      'the same cookies again: the store read only',
      await perCall(cryptoOps, (i) => memorySessions.load(memoryRequests[i] as Request)),
    )
  }
  // Ten times the header should cost about ten times as much: the median of each round's ratio shows it.
  const parseRatio = median(parseRatios).toFixed(1)
  const entry = results.get('readCookies, 1 MiB header')
  if (entry) entry.note = `the same, 10x longer: ${parseRatio}x the 100 KiB time (linear: about 10x)`
  return [...results].map(([name, { values, note }]) => ({ name, us: median(values), note }))
}

function meta() {
  const now = Date.now()
  return { createdAt: now, lastSeenAt: now, expiresAt: now + 1_800_000 }
}
