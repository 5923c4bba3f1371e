/**
 * @module What the Durable Objects store promises beyond the shared suites: two Workers writing one session, a
 * logout and a revocation that hold against requests held open, a regenerate split across two objects, expiry on
 * the object's clock with alarms reclaiming storage, the record answered by a write, and failures as ERR_STORE.
 */
import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test'
import { createSessions, type SessionRecord, type StoreContext } from 'edge-session'
import { type SessionEnv, session as sessionMiddleware } from 'edge-session/hono'
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import {
  durableObjectStore,
  MAX_RECORD_BYTES,
  type SessionObjectNamespace,
} from '../../../src/stores/durable-object.ts'
import { storageKey } from '../../shared/conformance.ts'
import { CookieJar } from '../../support/jar.ts'
import { doEnv, freshPrefix } from './durable-object-bindings.ts'

type Data = Record<string, unknown>

/** The secret and prefix test/support/workerd/second-worker.ts uses. */
const SECRET = 'durable-object-secret-0123456789abcdefghij'
const SHARED_PREFIX = 'two-workers:'

/** What these tests read of an object's storage (SQLite-backed: the synchronous KV API). */
interface TestStorage {
  kv: {
    get(key: string): unknown
    put(key: string, value: unknown): void
    list(): Iterable<[string, unknown]>
  }
  getAlarm(): Promise<number | null>
}

const ns = doEnv.SESSION_OBJECTS as unknown as {
  idFromName(name: string): unknown
  get(id: unknown): unknown
}
const objectOf = (prefix: string, name: string) => ns.get(ns.idFromName(prefix + name))

/** Runs `callback` on the storage of the object named `prefix + name`. */
function inObject<R>(prefix: string, name: string, callback: (storage: TestStorage) => R | Promise<R>) {
  return runInDurableObject(
    objectOf(prefix, name) as never,
    (_instance: unknown, state: { storage: unknown }) => callback(state.storage as TestStorage),
  )
}

/** The names an object keeps (empty once its alarm has reclaimed it). */
const storedNames = (prefix: string, name: string) =>
  inObject(prefix, name, (s) => [...s.kv.list()].map(([k]) => k))

const ctx = (extra: Partial<StoreContext> = {}): StoreContext => ({
  env: doEnv,
  signal: new AbortController().signal,
  ...extra,
})

const record = (data: Data, at = Date.now()): SessionRecord => ({
  data,
  meta: { createdAt: at, lastSeenAt: at, expiresAt: at + 600_000 },
})

function setup(prefix = freshPrefix(), namespace: SessionObjectNamespace = doEnv.SESSION_OBJECTS) {
  const store = durableObjectStore({ namespace, prefix })
  const sessions = createSessions<Data>({ store, secrets: [SECRET], storeTimeout: 2000 })
  return { prefix, store, sessions }
}

async function established(sessions: ReturnType<typeof setup>['sessions'], data: Data) {
  const jar = new CookieJar()
  const first = await sessions.load(jar.request(), doEnv)
  for (const [key, value] of Object.entries(data)) first.set(key, value)
  jar.update(await sessions.commit(first, new Response()))
  return { jar, first }
}

const clears = (response: Response) => response.headers.getSetCookie().some((line) => /Max-Age=0/.test(line))

/** A promise with its resolve function. */
function deferred<T = void>() {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => {
    resolve = r
  })
  return { promise, resolve }
}

/**
 * The binding, with every stub's `method` replaced by `replace(call)`: to hold a call open, or fail it. Other
 * methods go through untouched.
 */
function interceptedNamespace(
  method: string,
  replace: (call: (...args: unknown[]) => Promise<unknown>, args: unknown[]) => Promise<unknown>,
): SessionObjectNamespace {
  return {
    idFromName: (name: string) => ns.idFromName(name),
    get(id: never) {
      const stub = ns.get(id) as Record<string, (...args: unknown[]) => Promise<unknown>>
      return new Proxy(stub, {
        get(target, property) {
          if (typeof property !== 'string') return Reflect.get(target, property)
          // Called on the stub itself: a stub's method is a proxy too, whose `apply` would be a remote call.
          const call = (...args: unknown[]) =>
            (target[property] as (...a: unknown[]) => Promise<unknown>)(...args)
          return property === method ? (...args: unknown[]) => replace(call, args) : call
        },
      })
    },
  }
}

describe('durableObjectStore: two Workers on one class', () => {
  it('keeps all of 100 writers on one session, half from another Worker, the local half held open across them', async () => {
    const { sessions } = setup(SHARED_PREFIX)
    const { jar, first } = await established(sessions, { owner: 'ada' })
    // The local half loads first and commits only after every remote write has landed.
    const held = await Promise.all(Array.from({ length: 50 }, () => sessions.load(jar.request(), doEnv)))
    const remote = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        doEnv.SECOND.fetch(
          jar.request(`https://app.example/set/remote${i}`, { method: 'POST', body: `r${i}` }),
        ),
      ),
    )
    for (const response of remote) {
      expect(response.status).toBe(200)
      expect(await response.text()).toBe(first.id)
    }
    for (const [i, s] of held.entries()) s.set(`local${i}`, `l${i}`)
    const local = await Promise.all(held.map((s) => sessions.commit(s, new Response())))
    for (const response of local) expect(clears(response)).toBe(false)

    const expected: Data = { owner: 'ada' }
    for (let i = 0; i < 50; i++) {
      expected[`remote${i}`] = `r${i}`
      expected[`local${i}`] = `l${i}`
    }
    const after = await sessions.load(jar.request(), doEnv)
    expect(after.id).toBe(first.id)
    expect(after.all()).toEqual(expected)
  })

  it('keeps a logout made in another Worker while this one holds the session open: the write is not a way back', async () => {
    // The KV store's "logout undone": a request loaded before the logout commits after it. Here it cannot land.
    const { sessions, store } = setup(SHARED_PREFIX)
    const { jar, first } = await established(sessions, { user: 'ada' })
    const writer = await sessions.load(jar.request(), doEnv)
    const logout = await doEnv.SECOND.fetch(jar.request('https://app.example/logout', { method: 'POST' }))
    expect(clears(logout)).toBe(true)
    writer.set('cart', ['book'])
    const late = await sessions.commit(writer, new Response())
    // Nothing written and no cookie sent: the session ended.
    expect(late.headers.getSetCookie()).toEqual([])
    expect(writer.destroyed).toBe(true)
    expect(await store.get(await storageKey(first.id), ctx())).toBeNull()
    expect((await sessions.load(jar.request(), doEnv)).isNew).toBe(true)
  })
})

describe('durableObjectStore: revocation from one Worker, the next request in another', () => {
  it('gives a revoked session a fresh one at once, in the other Worker too', async () => {
    const { sessions } = setup(SHARED_PREFIX)
    const jar = new CookieJar()
    const login = await sessions.load(jar.request(), doEnv)
    login.setUser('revoked-from-another-worker')
    jar.update(await sessions.commit(login, new Response()))
    const [listed] = await sessions.listUserSessions('revoked-from-another-worker', doEnv)
    expect(
      await sessions.revokeUserSession('revoked-from-another-worker', listed?.handle as string, doEnv),
    ).toBe(true)
    // The second Worker opens no session with the cookie: it answers the id of a new one.
    const next = await doEnv.SECOND.fetch(
      jar.request('https://app.example/set/a', { method: 'POST', body: '1' }),
    )
    expect(await next.text()).not.toBe(login.id)
    expect(await sessions.listUserSessions('revoked-from-another-worker', doEnv)).toEqual([])
  })
})

describe('durableObjectStore: a regenerate spans two objects', () => {
  it('a revocation arriving between its two steps ends the session it was moving: nothing lands', async () => {
    const reached = deferred()
    const release = deferred()
    let holding = false
    const namespace = interceptedNamespace('write', async (call, args) => {
      if (holding) {
        reached.resolve()
        await release.promise
      }
      return call(...args)
    })
    const { sessions, store } = setup(freshPrefix(), namespace)
    const jar = new CookieJar()
    const login = await sessions.load(jar.request(), doEnv)
    login.setUser('ada')
    jar.update(await sessions.commit(login, new Response()))
    const [listed] = await sessions.listUserSessions('ada', doEnv)
    expect(listed?.handle).toBeDefined()

    const mover = await sessions.load(jar.request(), doEnv)
    const oldKey = await storageKey(mover.id)
    mover.regenerate()
    holding = true
    const moving = sessions.commit(mover, new Response())
    // The old record is taken; the new one is not written yet.
    await reached.promise
    holding = false
    expect(await sessions.revokeUserSession('ada', listed?.handle as string, doEnv)).toBe(true)
    release.resolve()
    const moved = await moving

    // The regenerate wrote nothing and sent no cookie.
    expect(moved.headers.getSetCookie()).toEqual([])
    expect(mover.destroyed).toBe(true)
    expect(await store.get(oldKey, ctx())).toBeNull()
    expect(await store.get(await storageKey(mover.id), ctx())).toBeNull()
    expect(await sessions.listUserSessions('ada', doEnv)).toEqual([])
    const after = jar.clone()
    after.update(moved)
    expect((await sessions.load(after.request(), doEnv)).isNew).toBe(true)
  })

  it('a failure between its two steps logs the user out: no old id, no new one', async () => {
    const namespace = interceptedNamespace('write', async (call, args) => {
      if (failing) throw new Error('the new object is unreachable')
      return call(...args)
    })
    let failing = false
    const { sessions, store } = setup(freshPrefix(), namespace)
    const { jar, first } = await established(sessions, { user: 'ada' })
    const mover = await sessions.load(jar.request(), doEnv)
    mover.regenerate()
    failing = true
    await expect(sessions.commit(mover, new Response())).rejects.toMatchObject({ code: 'ERR_STORE' })
    failing = false
    expect(await store.get(await storageKey(first.id), ctx())).toBeNull()
    expect(await store.get(await storageKey(mover.id), ctx())).toBeNull()
    expect((await sessions.load(jar.request(), doEnv)).isNew).toBe(true)
  })

  it('a retry of a regenerate whose old record it already took writes the new one again', async () => {
    const { store } = setup()
    await store.set('old', record({ a: 1 }), 60_000, ctx())
    // The first attempt took the old record and then failed: the same move again lands.
    expect(await store.set('new', record({ a: 2 }), 60_000, ctx(), 'old')).toBe(true)
    await store.delete('new', ctx())
    expect(await store.set('new', record({ a: 3 }), 60_000, ctx(), 'old')).toBe(true)
    expect((await store.get('new', ctx()))?.data).toEqual({ a: 3 })
    // Another move of the old id is not the same move: it finds nothing to take.
    expect(await store.set('other', record({ a: 4 }), 60_000, ctx(), 'old')).toBe(false)
    expect(await store.get('other', ctx())).toBeNull()
  })
})

describe('durableObjectStore: expiry on the object clock, storage reclaimed by alarms', () => {
  it('reads a record past its TTL as missing, then its alarm deletes the object storage', async () => {
    const { store, prefix } = setup()
    await store.set('brief', record({ a: 1 }), 300, ctx())
    expect((await store.get('brief', ctx()))?.data).toEqual({ a: 1 })
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(await store.get('brief', ctx())).toBeNull()
    // Nor does a change bring it back.
    const patch = { set: { b: 2 }, delete: [], flash: [], meta: record({}).meta }
    expect(await store.patch('brief', patch, 60_000, ctx())).toBe(false)
    // The alarm set for the deadline fires on its own (no job outside the object).
    for (let i = 0; i < 50 && (await storedNames(prefix, 'brief')).length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect(await storedNames(prefix, 'brief')).toEqual([])
  })

  it('reads as missing once the deadline passes, before the alarm has run; the alarm then reclaims it', async () => {
    const { store, prefix } = setup()
    await store.set('k', record({ a: 1 }), 600_000, ctx())
    // The deadline moved into the past by hand: the alarm, set for ten minutes on, has not run.
    await inObject(prefix, 'k', (s) => s.kv.put('deadline', Date.now() - 1))
    expect(await store.get('k', ctx())).toBeNull()
    expect(await storedNames(prefix, 'k')).toContain('record')
    expect(await runDurableObjectAlarm(objectOf(prefix, 'k') as never)).toBe(true)
    expect(await storedNames(prefix, 'k')).toEqual([])
    expect(await inObject(prefix, 'k', (s) => s.getAlarm())).toBeNull()
  })

  it('keeps a live record through an early alarm, which sleeps again until the later deadline', async () => {
    const { store, prefix } = setup()
    await store.set('k', record({ a: 1 }), 60_000, ctx())
    const patch = { set: { b: 2 }, delete: [], flash: [], meta: record({}).meta }
    expect(await store.patch('k', patch, 600_000, ctx())).toBe(true)
    expect(await runDurableObjectAlarm(objectOf(prefix, 'k') as never)).toBe(true)
    expect((await store.get('k', ctx()))?.data).toEqual({ a: 1, b: 2 })
    const alarm = await inObject(prefix, 'k', (s) => s.getAlarm())
    expect(alarm).toBeGreaterThan(Date.now() + 500_000)
  })

  it('keeps the note a regenerate leaves on the old object for a while, then its alarm deletes it', async () => {
    const { store, prefix } = setup()
    await store.set('old', record({ a: 1 }), 600_000, ctx())
    expect(await store.set('new', record({ a: 1 }), 600_000, ctx(), 'old')).toBe(true)
    expect(await storedNames(prefix, 'old')).toEqual(['gone'])
    // Its alarm before the note's end keeps it; after, deletes the object's storage.
    expect(await runDurableObjectAlarm(objectOf(prefix, 'old') as never)).toBe(true)
    expect(await storedNames(prefix, 'old')).toEqual(['gone'])
    await inObject(prefix, 'old', (s) => s.kv.put('gone', { to: 'new', until: Date.now() - 1 }))
    expect(await runDurableObjectAlarm(objectOf(prefix, 'old') as never)).toBe(true)
    expect(await storedNames(prefix, 'old')).toEqual([])
    // The move is forgotten, not undone: the old id stays empty, the new one holds the session.
    expect(await store.get('old', ctx())).toBeNull()
    expect((await store.get('new', ctx()))?.data).toEqual({ a: 1 })
  })

  it("prunes a user's index entries by their lifetime, and its alarm deletes an index left empty", async () => {
    const { store, prefix } = setup()
    const user = { user: 'U', handle: 'h1' }
    await store.set('k1', record({ a: 1 }), 60_000, ctx({ user }))
    expect(await store.userEntries?.('U', ctx())).toEqual([{ key: 'k1', handle: 'h1' }])
    await inObject(prefix, 'u:U', (s) => s.kv.put('entry:k1', { handle: 'h1', expiresAt: Date.now() - 1 }))
    expect(await store.userEntries?.('U', ctx())).toEqual([])
    expect(await runDurableObjectAlarm(objectOf(prefix, 'u:U') as never)).toBe(true)
    expect(await storedNames(prefix, 'u:U')).toEqual([])
  })

  it('removes the index entry with the record on destroy, the record first', async () => {
    const { store, prefix } = setup()
    const user = { user: 'U', handle: 'h1' }
    await store.set('k1', record({ a: 1 }), 60_000, ctx({ user }))
    await store.delete('k1', ctx({ user }))
    expect(await store.get('k1', ctx())).toBeNull()
    expect(await store.userEntries?.('U', ctx())).toEqual([])
    expect(await storedNames(prefix, 'k1')).toEqual([])
  })
})

describe('durableObjectStore: writes answer the record as stored', () => {
  it('answers the merged record on a patch and a touch with returnRecord, with a change made by another request', async () => {
    const { store } = setup()
    const start = record({ a: 1 })
    await store.set('k', start, 60_000, ctx())
    const times = { createdAt: start.meta.createdAt, lastSeenAt: start.meta.createdAt + 5, expiresAt: 1e15 }
    // Another request's change, then this one's, asking for the record.
    expect(
      await store.patch('k', { set: { b: 2 }, delete: [], flash: ['b'], meta: times }, 60_000, ctx()),
    ).toBe(true)
    const answered = await store.patch(
      'k',
      { set: { c: 3 }, delete: ['a'], flash: [], meta: times },
      60_000,
      ctx({ returnRecord: true }),
    )
    expect(answered).toEqual({ data: { b: 2, c: 3 }, meta: { ...times, flash: ['b'] } })
    const later = { ...times, lastSeenAt: times.lastSeenAt + 1 }
    const touched = await store.touch?.('k', later, 60_000, ctx({ returnRecord: true }))
    expect(touched).toEqual({ data: { b: 2, c: 3 }, meta: { ...later, flash: ['b'] } })
    expect(await store.touch?.('k', later, 60_000, ctx())).toBe(true)
    expect(await store.touch?.('missing', later, 60_000, ctx({ returnRecord: true }))).toBe(false)
  })
})

describe('durableObjectStore: limits and failures', () => {
  it(`keeps a record of ${MAX_RECORD_BYTES} bytes, and refuses a larger one with ERR_TOO_LARGE`, async () => {
    const { sessions, store } = setup()
    const { jar, first } = await established(sessions, { a: 1 })
    const s = await sessions.load(jar.request(), doEnv)
    const overhead = JSON.stringify(record({ a: 1, big: '' })).length + 50
    s.set('big', 'x'.repeat(MAX_RECORD_BYTES - overhead))
    await sessions.commit(s, new Response())
    expect((await store.get(await storageKey(first.id), ctx()))?.data.big).toHaveLength(
      MAX_RECORD_BYTES - overhead,
    )
    const bigger = await sessions.load(jar.request(), doEnv)
    bigger.set('more', 'y'.repeat(100))
    await expect(sessions.commit(bigger, new Response())).rejects.toMatchObject({ code: 'ERR_TOO_LARGE' })
    const fresh = await sessions.load(new CookieJar().request(), doEnv)
    fresh.set('big', 'z'.repeat(MAX_RECORD_BYTES))
    await expect(sessions.commit(fresh, new Response())).rejects.toMatchObject({ code: 'ERR_TOO_LARGE' })
  })

  it('turns a failing object into ERR_STORE, and a 503 through the Hono middleware', async () => {
    const failing = interceptedNamespace('read', () => Promise.reject(new Error('object overloaded')))
    const { sessions: healthy } = setup()
    const { jar } = await established(healthy, { a: 1 })
    const { sessions } = setup(freshPrefix(), failing)
    await expect(sessions.load(jar.request(), doEnv)).rejects.toMatchObject({ code: 'ERR_STORE' })
    const app = new Hono<SessionEnv<Data>>()
    app.use(sessionMiddleware(sessions))
    app.get('/', (c) => c.text('never'))
    const response = await app.request(jar.request(), undefined, doEnv)
    expect(response.status).toBe(503)
    expect(response.headers.getSetCookie()).toEqual([])
  })

  it('gives up on an object that does not answer after storeTimeout, with ERR_STORE', async () => {
    const hanging = interceptedNamespace('read', () => new Promise(() => {}))
    const { sessions: healthy } = setup()
    const { jar } = await established(healthy, { a: 1 })
    const store = durableObjectStore({ namespace: hanging })
    const sessions = createSessions<Data>({ store, secrets: [SECRET], storeTimeout: 100 })
    const started = Date.now()
    await expect(sessions.load(jar.request(), doEnv)).rejects.toMatchObject({ code: 'ERR_STORE' })
    expect(Date.now() - started).toBeLessThan(2000)
  })

  it('lets a change that timed out land later, whole: an RPC call cannot be aborted', async () => {
    const release = deferred()
    const landed = deferred<unknown>()
    let slow = false
    const namespace = interceptedNamespace('change', async (call, args) => {
      if (!slow) return call(...args)
      await release.promise
      const answer = await call(...args)
      landed.resolve(answer)
      return answer
    })
    const prefix = freshPrefix()
    const store = durableObjectStore({ namespace, prefix })
    const sessions = createSessions<Data>({ store, secrets: [SECRET], storeTimeout: 100 })
    const { jar, first } = await established(sessions, { a: 1 })
    const s = await sessions.load(jar.request(), doEnv)
    s.set('b', 2).set('c', 3)
    slow = true
    await expect(sessions.commit(s, new Response())).rejects.toMatchObject({ code: 'ERR_STORE' })
    expect((await store.get(await storageKey(first.id), ctx()))?.data).toEqual({ a: 1 })
    release.resolve()
    expect(await landed.promise).toBe('written')
    expect((await store.get(await storageKey(first.id), ctx()))?.data).toEqual({ a: 1, b: 2, c: 3 })
  })

  it('refuses a namespace that is not one with ERR_CONFIG, at creation or at the first call', async () => {
    expect(() => durableObjectStore({ namespace: {} as never })).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG' }),
    )
    const store = durableObjectStore({ namespace: (env: { NOPE?: SessionObjectNamespace }) => env.NOPE })
    const sessions = createSessions<Data>({ store, secrets: [SECRET] })
    const s = await sessions.load(new CookieJar().request(), {})
    s.set('a', 1)
    await expect(sessions.commit(s, new Response())).rejects.toMatchObject({ code: 'ERR_CONFIG' })
  })

  it('cannot count sessions or users: no object sees them all', async () => {
    const { sessions } = setup()
    await expect(sessions.count(doEnv)).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' })
    await expect(sessions.countUsers(doEnv)).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' })
  })
})
