/**
 * @module The concurrency suite: many requests on one session at once, through plain load/commit and through the
 * Hono middleware. Uses only web APIs, Hono and vitest's describe/it/expect, so it runs in Node and under Deno.
 *
 * ```ts
 * describeConcurrency({ name: 'memory', createStore: () => memoryStore() })
 * ```
 */

import { createSessions, type ServerStore, type Session, type Sessions } from 'edge-session'
import { type SessionEnv, session as sessionMiddleware } from 'edge-session/hono'
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { CookieJar, manualClock } from '../support/jar.ts'
import { storageKey } from './conformance.ts'

export interface ConcurrencyOptions {
  name: string
  /** A store with its own empty key space, for each test. */
  createStore: () => ServerStore | Promise<ServerStore>
  /**
   * False for a store that cannot count sessions (Durable Objects: no object sees them all): `count()` must then
   * reject with `ERR_UNSUPPORTED`, and the store's own tests check the records one by one instead.
   */
  counts?: boolean
}

const SECRET = 'concurrency-secret-0123456789abcdefghijklmno'
const REQUESTS = 100

type Data = Record<string, unknown>

/** Tests the suite registers: the Deno runner checks it ran them all. */
export const CONCURRENCY_TESTS = 7

/** A deterministic shuffle (mulberry32), so a failing order can be replayed from its seed. */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  let state = seed >>> 0
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[out[i], out[j]] = [out[j] as T, out[i] as T]
  }
  return out
}

/** Whether a response's Set-Cookie clears the session cookie. */
export function clears(response: Response): boolean {
  return response.headers.getSetCookie().some((line) => /^sid=;.*Max-Age=0/.test(line))
}

/** Whether a response's Set-Cookie issues a live session cookie. */
export function issues(response: Response): boolean {
  return response.headers.getSetCookie().some((line) => /^sid=[^;]+;/.test(line) && !/Max-Age=0/.test(line))
}

export function describeConcurrency(options: ConcurrencyOptions): void {
  /** The live sessions are `expected`, where the store counts them. */
  async function expectCount(sessions: Sessions<Data>, expected: number): Promise<void> {
    if (options.counts === false) {
      await expect(sessions.count()).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' })
    } else expect(await sessions.count()).toBe(expected)
  }

  async function setup() {
    const store = await options.createStore()
    const clock = manualClock()
    const sessions = createSessions<Data>({
      store,
      secrets: [SECRET],
      idleTimeout: 1800,
      touchInterval: 60,
      now: clock.now,
    })
    return { store, clock, sessions }
  }

  /** A session holding `data`, and the jar that carries its cookie. */
  async function established(sessions: Sessions<Data>, data: Data) {
    const jar = new CookieJar()
    const first = await sessions.load(jar.request())
    for (const [key, value] of Object.entries(data)) first.set(key, value)
    jar.update(await sessions.commit(first, new Response()))
    return { jar, first }
  }

  describe(`concurrency: ${options.name}`, () => {
    it(`loses nothing when ${REQUESTS} concurrent requests each set or delete their own key, among readers and touches`, async () => {
      const { sessions, clock } = await setup()
      const seed: Data = { owner: 'ada' }
      for (let i = 0; i < 20; i++) seed[`old${i}`] = i
      const { jar, first } = await established(sessions, seed)
      // Past the touch interval: the read-only requests below each extend the deadline while the others write.
      clock.advance(61_000)
      const results = await Promise.all(
        Array.from({ length: REQUESTS + 30 }, async (_, i) => {
          const s = await sessions.load(jar.request())
          expect(s.id).toBe(first.id)
          if (i < REQUESTS) s.set(`k${i}`, { i, by: `request ${i}` })
          if (i < 20) s.delete(`old${i}`)
          return sessions.commit(s, new Response())
        }),
      )
      for (const response of results) expect(clears(response)).toBe(false)
      const after = await sessions.load(jar.request())
      const expected: Data = { owner: 'ada' }
      for (let i = 0; i < REQUESTS; i++) expected[`k${i}`] = { i, by: `request ${i}` }
      expect(after.id).toBe(first.id)
      expect(after.all()).toEqual(expected)
      expect(after.expiresAt).toBe(clock.now() + 1800_000)
      await expectCount(sessions, 1)
    })

    it(`loses nothing when ${REQUESTS} concurrent requests through the Hono middleware each set their own key`, async () => {
      const { sessions } = await setup()
      const app = new Hono<SessionEnv<Data>>()
      app.use(sessionMiddleware(sessions))
      app.post('/set/:key', async (c) => {
        c.get('session').set(c.req.param('key'), await c.req.text())
        return c.text('ok')
      })
      app.get('/all', (c) => c.json(c.get('session').all()))
      const jar = new CookieJar()
      const login = await app.request(
        jar.request('https://app.example/set/owner', { method: 'POST', body: 'ada' }),
      )
      jar.update(login)
      const responses = await Promise.all(
        Array.from({ length: REQUESTS }, (_, i) =>
          app.request(jar.request(`https://app.example/set/k${i}`, { method: 'POST', body: `v${i}` })),
        ),
      )
      for (const response of responses) {
        expect(response.status).toBe(200)
        expect(clears(response)).toBe(false)
      }
      const expected: Data = { owner: 'ada' }
      for (let i = 0; i < REQUESTS; i++) expected[`k${i}`] = `v${i}`
      expect(await (await app.request(jar.request('https://app.example/all'))).json()).toEqual(expected)
      await expectCount(sessions, 1)
    })

    it('lets the last committed write to one key win, keeping every other key of every writer', async () => {
      const { sessions } = await setup()
      const { jar } = await established(sessions, { a: 'initial' })
      for (const seed of [1, 2, 3]) {
        const writers = await Promise.all(Array.from({ length: 20 }, () => sessions.load(jar.request())))
        writers.forEach((s, i) => {
          s.set('a', `writer ${i}`)
          s.set(`own${seed}-${i}`, i)
        })
        const order = shuffled(
          writers.map((_, i) => i),
          seed,
        )
        for (const i of order) await sessions.commit(writers[i] as Session<Data>, new Response())
        const after = await sessions.load(jar.request())
        expect(after.get('a')).toBe(`writer ${order.at(-1)}`)
        for (let i = 0; i < 20; i++) expect(after.get(`own${seed}-${i}`)).toBe(i)
      }
    })

    it('keeps one whole write to a key written by many requests at once', async () => {
      const { sessions } = await setup()
      const { jar } = await established(sessions, { a: { writer: -1, items: [] } })
      const values = Array.from({ length: 50 }, (_, i) => ({
        writer: i,
        items: Array.from({ length: 20 }, (_, k) => `${i}:${k}`),
      }))
      await Promise.all(
        values.map(async (value) => {
          const s = await sessions.load(jar.request())
          s.set('a', value)
          return sessions.commit(s, new Response())
        }),
      )
      const winner = (await sessions.load(jar.request())).get('a')
      // One writer's value, whole: never a mix of two.
      expect(values).toContainEqual(winner)
    })

    it('ends a session destroyed while other requests regenerate and write it: no old id survives', async () => {
      const { sessions, store } = await setup()
      const ctx = { env: undefined, signal: new AbortController().signal }
      let regenerateWon = 0
      let destroyWon = 0
      for (let round = 0; round < 21; round++) {
        const { jar, first } = await established(sessions, { user: 'ada', round })
        const [regenerator, destroyer, writer] = await Promise.all([
          sessions.load(jar.request()),
          sessions.load(jar.request()),
          sessions.load(jar.request()),
        ])
        regenerator.regenerate()
        regenerator.set('role', 'admin')
        destroyer.destroy()
        writer.set('late', true)
        // Every third round the regenerate, or the destroy, reaches the store before the others start; the other
        // rounds start all three at once, in a different order each time.
        const commits = [regenerator, destroyer, writer]
        const responses: Response[] = []
        const commit = async (i: number) => {
          responses[i] = await sessions.commit(commits[i] as Session<Data>, new Response())
        }
        const mode = round % 3
        if (mode === 1) await commit(0)
        if (mode === 2) await commit(1)
        await Promise.all(
          shuffled([0, 1, 2], round)
            .filter((i) => responses[i] === undefined)
            .map(commit),
        )
        const [regenerateResponse, destroyResponse, writeResponse] = responses as [
          Response,
          Response,
          Response,
        ]

        // The destroyed id is gone for good: its record, its cookie, and the late write did not bring it back.
        expect(clears(destroyResponse)).toBe(true)
        expect(await store.get(await storageKey(first.id), ctx)).toBeNull()
        expect((await sessions.load(jar.request())).isNew).toBe(true)
        // A write that landed before the destroy re-sent the old cookie (its deadline moved): it opens nothing now.
        const late = jar.clone()
        late.update(writeResponse)
        expect((await sessions.load(late.request())).isNew).toBe(true)
        const newKey = await storageKey(regenerator.id)
        if (issues(regenerateResponse)) {
          // The regenerate reached the store before the destroy: the session moved to its new id first, and the
          // destroy ended only the old one. The new cookie opens it, with the data of the request that moved it.
          regenerateWon++
          const moved = new CookieJar()
          moved.update(regenerateResponse)
          const opened = await sessions.load(moved.request())
          expect(opened.id).toBe(regenerator.id)
          expect(opened.get('role')).toBe('admin')
          expect(opened.has('late')).toBe(false)
          // Ended here, so the next round starts from an empty store.
          opened.destroy()
          await sessions.commit(opened, new Response())
        } else {
          // The destroy came first: the regenerate wrote nothing and sent no cookie (the destroy's clears it).
          destroyWon++
          expect(regenerateResponse.headers.getSetCookie()).toEqual([])
          expect(regenerator.destroyed).toBe(true)
          expect(await store.get(newKey, ctx)).toBeNull()
        }
        expect(await store.get(newKey, ctx)).toBeNull()
        await expectCount(sessions, 0)
      }
      expect(regenerateWon + destroyWon).toBe(21)
      expect(regenerateWon).toBeGreaterThanOrEqual(7)
      expect(destroyWon).toBeGreaterThanOrEqual(7)
    })

    it('keeps the user in the session a regenerate moved, whatever order the browser applies racing responses in', async () => {
      const { sessions } = await setup()
      // Each scenario: requests sent together with one cookie; the first listed reaches the store first, and the
      // browser applies the responses in that same order, so the one that lost the race is applied last.
      const scenarios: Array<[string, Array<(s: Session<Data>) => void>]> = [
        [
          'log in, then a page view that writes',
          [(s) => s.regenerate().set('user', 'ada'), (s) => s.set('seen', 1)],
        ],
        [
          'log in, then a page view whose deadline is due',
          [(s) => s.regenerate().set('user', 'ada'), (s) => s.touch()],
        ],
        [
          'log in twice (a double click)',
          [(s) => s.regenerate().set('user', 'ada'), (s) => s.regenerate().set('user', 'ada')],
        ],
      ]
      for (const [name, handlers] of scenarios) {
        const { jar } = await established(sessions, { visits: 1 })
        const loaded = await Promise.all(handlers.map(() => sessions.load(jar.request())))
        for (const [i, handle] of handlers.entries()) handle(loaded[i] as Session<Data>)
        for (const s of loaded) jar.update(await sessions.commit(s, new Response()))
        const after = await sessions.load(jar.request())
        expect({ name, isNew: after.isNew, user: after.get('user') }).toEqual({
          name,
          isNew: false,
          user: 'ada',
        })
        expect(after.id).toBe(loaded[0]?.id)
        // No record left behind that no cookie names.
        await expectCount(sessions, 1)
        after.destroy()
        jar.update(await sessions.commit(after, new Response()))
      }
    })

    it('keeps exactly one of two regenerates of one session racing each other, and no old id', async () => {
      const { sessions, store } = await setup()
      const ctx = { env: undefined, signal: new AbortController().signal }
      for (let round = 0; round < 10; round++) {
        const { jar, first } = await established(sessions, { user: 'ada' })
        const [a, b] = await Promise.all([sessions.load(jar.request()), sessions.load(jar.request())])
        a.regenerate()
        b.regenerate()
        const [ra, rb] = await Promise.all([
          sessions.commit(a, new Response()),
          sessions.commit(b, new Response()),
        ])
        const winners = [
          [a, ra],
          [b, rb],
        ].filter(([, response]) => issues(response as Response))
        expect(winners).toHaveLength(1)
        const [winner] = winners[0] as [Session<Data>, Response]
        const loser = winner === a ? b : a
        expect(await store.get(await storageKey(first.id), ctx)).toBeNull()
        expect(await store.get(await storageKey(loser.id), ctx)).toBeNull()
        expect((await store.get(await storageKey(winner.id), ctx))?.data).toEqual({ user: 'ada' })
        await expectCount(sessions, 1)
        await store.delete(await storageKey(winner.id), ctx)
      }
    })
  })
}
