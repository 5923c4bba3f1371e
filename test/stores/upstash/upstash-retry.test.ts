/** @module Writes whose reply is lost and retried by @upstash/redis: the retry must not undo or end the session. */
import { randomBytes } from 'node:crypto'
import { createSessions, type SessionRecord, type StoreContext } from 'edge-session'
import { upstashStore } from 'edge-session/stores/upstash'
import { beforeEach, describe, expect, it } from 'vitest'
import { storageKey } from '../../shared/conformance.ts'
import { useFaultProxy } from '../../support/fault-proxy.ts'
import { CookieJar } from '../../support/jar.ts'
import { useLocalUpstash } from '../../support/use-local-upstash.ts'

const SECRET = 'retry-test-secret-0123456789abcdefghijklmnop'
const HOUR = 3_600_000
const ctx = (): StoreContext => ({ env: undefined, signal: new AbortController().signal })
const newKey = () => randomBytes(32).toString('base64url')
const record = (data: Record<string, unknown>): SessionRecord => ({
  data,
  meta: { createdAt: 1, lastSeenAt: 1, expiresAt: 2 },
})

const local = useLocalUpstash()
const proxy = useFaultProxy(local)

beforeEach(() => {
  proxy.loseReplies(0)
})

/** Every session hash in Redis (the live set, the users set and user indexes excluded). */
async function sessionHashes(): Promise<string[]> {
  const keys = (await local.direct('KEYS', 'sess:*')) as Buffer[]
  return keys.map(String).filter((key) => /^sess:[\w-]{43}$/.test(key))
}

/** The members of each user index in Redis, by index key. */
async function userIndexes(): Promise<Record<string, string[]>> {
  const indexes: Record<string, string[]> = {}
  for (const key of ((await local.direct('KEYS', 'sess:u:*')) as Buffer[]).map(String).sort()) {
    indexes[key] = ((await local.direct('ZRANGE', key, '0', '-1')) as Buffer[]).map(String)
  }
  return indexes
}

describe('set with replaces, run twice (a retry after a lost reply)', () => {
  it('resolves true the second time, and leaves the new record alone', async () => {
    const store = upstashStore({ redis: local.client() })
    const [oldKey, key] = [newKey(), newKey()]
    await store.set(oldKey, record({ a: 1 }), HOUR, ctx())
    expect(await store.set(key, record({ a: 1, b: 2 }), HOUR, ctx(), oldKey)).toBe(true)
    expect(await store.set(key, record({ a: 1, b: 2 }), HOUR, ctx(), oldKey)).toBe(true)
    expect(await store.get(key, ctx())).toEqual(record({ a: 1, b: 2 }))
    expect(await store.get(oldKey, ctx())).toBeNull()
    expect(await sessionHashes()).toEqual([`sess:${key}`])
    expect(await store.count?.(ctx())).toBe(1)
  })

  it('still resolves false when the old record was destroyed and the new key was never written', async () => {
    const store = upstashStore({ redis: local.client() })
    const [oldKey, key] = [newKey(), newKey()]
    await store.set(oldKey, record({ a: 1 }), HOUR, ctx())
    await store.delete(oldKey, ctx())
    expect(await store.set(key, record({ a: 1 }), HOUR, ctx(), oldKey)).toBe(false)
    expect(await store.set(key, record({ a: 1 }), HOUR, ctx(), oldKey)).toBe(false)
    expect(await sessionHashes()).toEqual([])
    expect(await store.count?.(ctx())).toBe(0)
  })
})

describe.each([
  ['default retries', {}],
  // `retry: false` still makes a second attempt in @upstash/redis 1.x: the fix matters there too.
  ['retry: false', { retry: false as const }],
])('a session whose write reply is lost, client with %s', (_, clientOptions) => {
  it('keeps a regenerated session: new cookie sent, new record kept, old one gone', async () => {
    const sessions = createSessions<Record<string, unknown>>({
      store: upstashStore({ redis: local.client({ url: proxy.url, ...clientOptions }) }),
      secrets: [SECRET],
    })
    const jar = new CookieJar()
    const first = await sessions.load(jar.request())
    first.set('user', 'ada')
    jar.update(await sessions.commit(first, new Response()))
    const before = jar.clone()

    const login = await sessions.load(jar.request())
    login.regenerate()
    login.set('role', 'admin')
    const lostBefore = proxy.lost
    const receivedBefore = proxy.received
    proxy.loseReplies(1)
    const response = await sessions.commit(login, new Response())
    expect(proxy.lost - lostBefore).toBe(1)
    // The script ran twice: once for the lost reply, once for the client's retry.
    expect(proxy.received - receivedBefore).toBe(2)

    const setCookies = jar.update(response)
    expect(setCookies).toHaveLength(1)
    expect(setCookies[0]).not.toMatch(/Max-Age=0/)
    expect(login.destroyed).toBe(false)
    const after = await sessions.load(jar.request())
    expect(after.isNew).toBe(false)
    expect(after.id).toBe(login.id)
    expect(after.all()).toEqual({ user: 'ada', role: 'admin' })
    expect((await sessions.load(before.request())).isNew).toBe(true)
    expect(await sessionHashes()).toEqual([`sess:${await storageKey(login.id)}`])
    expect(await sessions.count()).toBe(1)
  })

  it("keeps a login whose reply is lost: one entry, in the new user's index only", async () => {
    const sessions = createSessions<Record<string, unknown>>({
      store: upstashStore({ redis: local.client({ url: proxy.url, ...clientOptions }) }),
      secrets: [SECRET],
    })
    const jar = new CookieJar()
    const first = await sessions.load(jar.request())
    first.set('cart', ['book']).setUser('ada', { label: 'Laptop' })
    jar.update(await sessions.commit(first, new Response()))
    // Logging in as someone else moves the session from one user's index to the other's.
    const login = await sessions.load(jar.request())
    login.setUser('bob', { label: 'Laptop' })
    proxy.loseReplies(1)
    const response = await sessions.commit(login, new Response())
    expect(jar.update(response)[0]).not.toMatch(/Max-Age=0/)
    expect(login.destroyed).toBe(false)
    const after = await sessions.load(jar.request())
    expect([after.id, after.userId, after.get('cart')]).toEqual([login.id, 'bob', ['book']])
    expect(await sessions.listUserSessions('ada')).toEqual([])
    expect((await sessions.listUserSessions('bob')).map((s) => s.handle)).toEqual([login.handle])
    const indexes = Object.values(await userIndexes())
    expect(indexes).toEqual([[`${login.handle}.${await storageKey(login.id)}`]])
    expect(await sessions.countUsers()).toBe(1)
  })

  it('keeps a new session and a patch whose replies are lost', async () => {
    const sessions = createSessions<Record<string, unknown>>({
      store: upstashStore({ redis: local.client({ url: proxy.url, ...clientOptions }) }),
      secrets: [SECRET],
    })
    const jar = new CookieJar()
    const created = await sessions.load(jar.request())
    created.set('a', 1)
    proxy.loseReplies(1)
    expect(jar.update(await sessions.commit(created, new Response()))[0]).not.toMatch(/Max-Age=0/)
    const changed = await sessions.load(jar.request())
    expect(changed.isNew).toBe(false)
    changed.set('b', 2)
    proxy.loseReplies(1)
    const lines = jar.update(await sessions.commit(changed, new Response()))
    expect(lines.join()).not.toMatch(/Max-Age=0/)
    expect((await sessions.load(jar.request())).all()).toEqual({ a: 1, b: 2 })
    expect(await sessions.count()).toBe(1)
  })
})
