/**
 * @module Store faults seen through the demo app (Hono middleware) and through load/commit, over the Upstash store:
 * the store down, erroring (refusing writes, a key of the wrong type, a busy script), and hanging past
 * `storeTimeout`. Each must give ERR_STORE, a 503 with no Set-Cookie, leave every stored record exactly as it was,
 * and find every committed session intact once the store is back.
 */
import { createSessions, type Sessions } from 'edge-session'
import { upstashStore } from 'edge-session/stores/upstash'
import type { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { createDemoApp, type DemoData } from '../../examples/shared/app.ts'
import { storageKey } from '../shared/conformance.ts'
import { useFaultProxy } from '../support/fault-proxy.ts'
import { CookieJar } from '../support/jar.ts'
import { RespConnection } from '../support/resp.ts'
import { useLocalUpstash } from '../support/use-local-upstash.ts'

const SECRET = 'faults-test-secret-0123456789abcdefghijklmno'
const STORE_TIMEOUT = 400
/**
 * For the tests whose faults answer at once (a stopped endpoint, error replies): a timeout no busy machine
 * reaches while the sessions are set up, so only the fault under test can fail a request.
 */
const FAST_FAULT_TIMEOUT = 5000
const SESSIONS = 12

const local = useLocalUpstash({
  // Before Redis is emptied: FLUSHALL is a write, which min-replicas-to-write would refuse.
  beforeEach: async () => {
    proxy.mode = 'forward'
    proxy.releaseHeld()
    await local.direct('CONFIG', 'SET', 'min-replicas-to-write', '0')
  },
})
const proxy = useFaultProxy(local)

interface Visitor {
  jar: CookieJar
  id: string
  visits: number
  user: string | null
}

/**
 * The demo app over Upstash through the fault proxy. The client makes a single attempt per call (`retries: 0`),
 * so a request the proxy held is never sent again after the test releases it: what Redis holds afterwards is
 * exactly what the test made.
 */
function demo(storeTimeout = FAST_FAULT_TIMEOUT): { app: Hono; sessions: Sessions<DemoData> } {
  const redis = local.client({ url: proxy.url, retry: { retries: 0 } })
  const sessions = createSessions<DemoData>({
    store: upstashStore({ redis }),
    secrets: [SECRET],
    storeTimeout,
  })
  return { app: createDemoApp(sessions, { runtime: 'node', store: 'upstash' }) as unknown as Hono, sessions }
}

const api = (jar: CookieJar, path = '/api/session', init: RequestInit = {}) =>
  jar.request(`http://localhost${path}`, {
    ...init,
    headers: { accept: 'application/json', ...init.headers },
  })

/** Visitors with sessions committed while the store is well: some counted visits, half of them logged in. */
async function visitors(app: Hono): Promise<Visitor[]> {
  return Promise.all(
    Array.from({ length: SESSIONS }, async (_, n) => {
      const jar = new CookieJar()
      let visits = 0
      for (let i = 0; i <= n % 3; i++) {
        const response = await app.request(api(jar))
        expect(response.status).toBe(200)
        jar.update(response)
        visits++
      }
      let user: string | null = null
      if (n % 2 === 0) {
        user = `user-${n}`
        const login = await app.request(
          api(jar, '/api/login', {
            method: 'POST',
            body: JSON.stringify({ user }),
            headers: { 'content-type': 'application/json' },
          }),
        )
        expect(login.status).toBe(200)
        jar.update(login)
      }
      const id = (jar.get('sid') ?? '').split('.')[0] as string
      return { jar, id, visits, user }
    }),
  )
}

/** Every session hash, field by field, with its TTL: what "exactly as it was" is checked against. */
async function snapshot(people: Visitor[]) {
  return Promise.all(
    people.map(async ({ id }) => {
      const key = `sess:${await storageKey(id)}`
      const fields = ((await local.direct('HGETALL', key)) as Buffer[]).map(String)
      return { key, fields, pttl: Number(await local.direct('PTTL', key)) }
    }),
  )
}

async function expectUnchanged(before: Awaited<ReturnType<typeof snapshot>>, people: Visitor[]) {
  const after = await snapshot(people)
  for (const [i, record] of after.entries()) {
    const earlier = before[i] as (typeof before)[number]
    expect(record.fields).toEqual(earlier.fields)
    expect(earlier.fields.length).toBeGreaterThan(0)
    // Not extended: the failed request wrote no new deadline.
    expect(record.pttl).toBeLessThanOrEqual(earlier.pttl)
  }
}

/** Every kind of request the app serves fails with a 503 and sends no cookie; a new visitor too. */
async function expectUnavailable(app: Hono, people: Visitor[]) {
  const requests = [
    ...people.map(
      ({ jar }) =>
        () =>
          app.request(api(jar)),
    ),
    ...people.map(
      ({ jar }) =>
        () =>
          app.request(api(jar, '/', { headers: { accept: 'text/html' } })),
    ),
    ...people
      .filter(({ user }) => user !== null)
      .map(
        ({ jar }) =>
          () =>
            app.request(api(jar, '/api/logout', { method: 'POST' })),
      ),
    ...people
      .filter(({ user }) => user === null)
      .map(
        ({ jar }) =>
          () =>
            app.request(
              api(jar, '/api/login', {
                method: 'POST',
                body: JSON.stringify({ user: 'mallory' }),
                headers: { 'content-type': 'application/json' },
              }),
            ),
      ),
    () => app.request(api(new CookieJar())),
  ]
  const responses = await Promise.all(requests.map((request) => request()))
  for (const response of responses) {
    expect(response.status).toBe(503)
    expect(response.headers.getSetCookie()).toEqual([])
    expect(response.headers.get('set-cookie')).toBeNull()
  }
}

/** Once the store is back, each session is the one committed before the fault: same id, same visits and user. */
async function expectIntact(app: Hono, people: Visitor[]) {
  for (const person of people) {
    const response = await app.request(api(person.jar))
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ visits: person.visits + 1, user: person.user })
    person.jar.update(response)
    expect(person.jar.get('sid')?.split('.')[0]).toBe(person.id)
  }
}

async function expectStoreError(sessions: Sessions<DemoData>, people: Visitor[]) {
  const person = people[0] as Visitor
  const error = await (async () => {
    const s = await sessions.load(person.jar.request())
    s.set('visits', 1000)
    return sessions.commit(s, new Response())
  })().catch((e: unknown) => e)
  expect(error).toMatchObject({ name: 'SessionError', code: 'ERR_STORE' })
  expect((error as Error).cause).toBeDefined()
}

describe('the store down (endpoint stopped)', () => {
  it('answers 503 without cookies, writes nothing, and finds every session intact after', async () => {
    const { app, sessions } = demo()
    const people = await visitors(app)
    const before = await snapshot(people)
    await local.endpoint.stop()
    await expectUnavailable(app, people)
    await expect(sessions.load(people[0]?.jar.request() as Request)).rejects.toMatchObject({
      code: 'ERR_STORE',
    })
    await expect(sessions.count()).rejects.toMatchObject({ code: 'ERR_STORE' })
    await local.endpoint.start()
    await expectUnchanged(before, people)
    await expectIntact(app, people)
    expect(await sessions.count()).toBe(SESSIONS)
  })
})

describe('the store erroring', () => {
  it('refusing every write (NOREPLICAS: too few replicas): 503, reads still served, nothing half-written', async () => {
    // (Out of memory would not do: Redis lets a script whose first write is not a growing one, such as HDEL or
    // DEL, finish whole past maxmemory, and every write script here starts that way.)
    const { app, sessions } = demo()
    const people = await visitors(app)
    const before = await snapshot(people)
    await local.direct('CONFIG', 'SET', 'min-replicas-to-write', '1')
    await expectUnavailable(app, people)
    await expectStoreError(sessions, people)
    // A read-only load still works: the sessions are there, only writes are refused.
    const read = await sessions.load(people[1]?.jar.request() as Request)
    expect(read.isNew).toBe(false)
    expect(read.get('visits')).toBe(people[1]?.visits)
    await expectUnchanged(before, people)
    await local.direct('CONFIG', 'SET', 'min-replicas-to-write', '0')
    await expectIntact(app, people)
  })

  it('a key of the wrong type where the count index lives: 503, every record exactly as it was', async () => {
    const { app, sessions } = demo()
    const people = await visitors(app)
    const before = await snapshot(people)
    const live = (await local.direct('ZRANGE', 'sess:#live', '0', '-1', 'WITHSCORES')) as Buffer[]
    await local.direct('DEL', 'sess:#live')
    await local.direct('SET', 'sess:#live', 'clobbered by another app')
    await expectUnavailable(app, people)
    await expectStoreError(sessions, people)
    await expect(sessions.count()).rejects.toMatchObject({ code: 'ERR_STORE' })
    await expectUnchanged(before, people)
    expect(String(await local.direct('GET', 'sess:#live'))).toBe('clobbered by another app')
    // Repaired by its operator: the index put back as it was.
    await local.direct('DEL', 'sess:#live')
    for (let i = 0; i < live.length; i += 2)
      await local.direct('ZADD', 'sess:#live', String(live[i + 1]), String(live[i]))
    await expectIntact(app, people)
    expect(await sessions.count()).toBe(SESSIONS)
  })

  it('busy running a stuck script (BUSY errors to every command): 503, then intact after SCRIPT KILL', async () => {
    const { app, sessions } = demo()
    const people = await visitors(app)
    const before = await snapshot(people)
    await local.direct('CONFIG', 'SET', 'busy-reply-threshold', '50')
    const stuck = await RespConnection.open(local.redisServer.port)
    try {
      const running = stuck.send(['EVAL', 'while true do end', '0'])
      running.catch(() => {})
      await new Promise((resolve) => setTimeout(resolve, 120))
      await expectUnavailable(app, people)
      await expect(sessions.load(people[0]?.jar.request() as Request)).rejects.toMatchObject({
        code: 'ERR_STORE',
        cause: expect.objectContaining({ message: expect.stringMatching(/BUSY/) }),
      })
      await local.direct('SCRIPT', 'KILL')
      await running
    } finally {
      stuck.close()
      await local.direct('CONFIG', 'SET', 'busy-reply-threshold', '5000')
    }
    await expectUnchanged(before, people)
    await expectIntact(app, people)
  })
})

describe('the store hanging past storeTimeout', () => {
  it('answers 503 within the timeout, writes nothing, and finds every session intact after', async () => {
    // Visitors made with a generous timeout (a busy machine cannot fail them), then served with a tight one.
    const people = await visitors(demo().app)
    const { app, sessions } = demo(STORE_TIMEOUT)
    const before = await snapshot(people)
    proxy.mode = 'hang'
    const started = Date.now()
    await expectUnavailable(app, people)
    // All requests ran at once: the lot took about one storeTimeout, not one per request.
    expect(Date.now() - started).toBeLessThan(STORE_TIMEOUT * 4)
    expect(proxy.held).toBeGreaterThan(SESSIONS)
    await expect(sessions.count()).rejects.toMatchObject({
      code: 'ERR_STORE',
      message: expect.stringMatching(/within 400 ms/),
    })
    // The held requests are dropped unanswered, never passed on.
    proxy.releaseHeld()
    proxy.mode = 'forward'
    await expectUnchanged(before, people)
    await expectIntact(app, people)
  })
})

describe('a write that outlived storeTimeout', () => {
  it('fails with ERR_STORE at once, yet lands later, whole, when the client retries it', async () => {
    // The client's default retries: a request the proxy drops is sent again once the proxy forwards.
    const sessions = createSessions<Record<string, unknown>>({
      store: upstashStore({ redis: local.client({ url: proxy.url }) }),
      secrets: [SECRET],
      storeTimeout: STORE_TIMEOUT,
    })
    const jar = new CookieJar()
    const first = await sessions.load(jar.request())
    first.set('a', 1).set('b', 'gone soon')
    jar.update(await sessions.commit(first, new Response()))
    const key = `sess:${await storageKey(first.id)}`
    const fields = async () => ((await local.direct('HGETALL', key)) as Buffer[]).map(String)
    const before = await fields()

    const s = await sessions.load(jar.request())
    s.set('a', 2).set('c', [1, 2, 3]).delete('b')
    proxy.mode = 'hang'
    const response = new Response()
    await expect(sessions.commit(s, response)).rejects.toMatchObject({ code: 'ERR_STORE' })
    expect(response.headers.getSetCookie()).toEqual([])
    expect(await fields()).toEqual(before)

    // The store recovers; the held request's connection drops, and the client sends it again.
    proxy.mode = 'forward'
    proxy.releaseHeld()
    let after = before
    for (let i = 0; i < 60 && after.join() === before.join(); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      after = await fields()
    }
    const reader = await sessions.load(jar.request())
    expect(reader.all()).toEqual({ a: 2, c: [1, 2, 3] })
  })
})
