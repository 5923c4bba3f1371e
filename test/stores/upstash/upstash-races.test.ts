/**
 * @module Regenerate, destroy and write racing on many sessions at once over the Upstash store, checked in Redis
 * itself: no hash left for an old or destroyed id, and the count index naming exactly the hashes that remain.
 */
import { createSessions, type Session } from 'edge-session'
import { upstashStore } from 'edge-session/stores/upstash'
import { describe, expect, it } from 'vitest'
import { clears, issues, shuffled } from '../../shared/concurrency.ts'
import { storageKey } from '../../shared/conformance.ts'
import { CookieJar } from '../../support/jar.ts'
import { RespStatus } from '../../support/resp.ts'
import { useLocalUpstash } from '../../support/use-local-upstash.ts'

const SECRET = 'races-test-secret-0123456789abcdefghijklmnop'
type Data = Record<string, unknown>

const local = useLocalUpstash()

/** The hashed keys of every session hash in Redis, and the members of the count index. */
async function redisState() {
  const keys = ((await local.direct('KEYS', 'sess:*')) as Buffer[]).map(String)
  const hashes = keys.filter((key) => /^sess:[\w-]{43}$/.test(key)).map((key) => key.slice('sess:'.length))
  const members = ((await local.direct('ZRANGE', 'sess:#live', '0', '-1')) as Buffer[]).map(String)
  for (const key of hashes) {
    expect(await local.direct('TYPE', `sess:${key}`)).toEqual(new RespStatus('hash'))
    expect(Number(await local.direct('PTTL', `sess:${key}`))).toBeGreaterThan(0)
  }
  return { hashes: hashes.sort(), members: members.sort() }
}

describe('regenerate, destroy and write racing on 40 sessions at once, over Upstash', () => {
  it('leaves a hash only for sessions a regenerate moved before the destroy, and the count index matches', async () => {
    const sessions = createSessions<Data>({
      store: upstashStore({ redis: local.client() }),
      secrets: [SECRET],
    })
    const rounds = await Promise.all(
      Array.from({ length: 40 }, async (_, n) => {
        const jar = new CookieJar()
        const first = await sessions.load(jar.request())
        first.set('user', `user ${n}`)
        jar.update(await sessions.commit(first, new Response()))
        const [regenerator, destroyer, writer] = await Promise.all([
          sessions.load(jar.request()),
          sessions.load(jar.request()),
          sessions.load(jar.request()),
        ])
        regenerator.regenerate()
        destroyer.destroy()
        writer.set('late', n)
        return { n, jar, first, commits: [regenerator, destroyer, writer] as Session<Data>[] }
      }),
    )
    // Ten sessions only log in again (no race): they must all remain.
    const controls = await Promise.all(
      Array.from({ length: 10 }, async () => {
        const jar = new CookieJar()
        const s = await sessions.load(jar.request())
        s.set('user', 'control')
        jar.update(await sessions.commit(s, new Response()))
        const again = await sessions.load(jar.request())
        again.regenerate()
        return { jar, session: again }
      }),
    )
    // Every commit of every round at once; in a third of the rounds the regenerate is sent ahead of the others.
    const responses = new Map<Session<Data>, Response>()
    const send = async (s: Session<Data>) => {
      responses.set(s, await sessions.commit(s, new Response()))
    }
    await Promise.all([
      ...rounds.map(async ({ n, commits }) => {
        if (n % 3 === 0) await send(commits[0] as Session<Data>)
        await Promise.all(
          shuffled(commits, n)
            .filter((s) => !responses.has(s))
            .map(send),
        )
      }),
      ...controls.map(({ session }) => send(session)),
    ])

    const expected: string[] = []
    let moved = 0
    for (const { first, commits, jar } of rounds) {
      const [regenerator, destroyer] = commits as [Session<Data>, Session<Data>]
      expect(clears(responses.get(destroyer) as Response)).toBe(true)
      // The destroyed id never opens again.
      expect((await sessions.load(jar.request())).isNew).toBe(true)
      expect(await local.direct('EXISTS', `sess:${await storageKey(first.id)}`)).toBe(0)
      if (issues(responses.get(regenerator) as Response)) {
        moved++
        expected.push(await storageKey(regenerator.id))
      } else {
        expect(regenerator.destroyed).toBe(true)
      }
    }
    for (const { session } of controls) {
      expect(issues(responses.get(session) as Response)).toBe(true)
      expect(session.isNew).toBe(false)
      expected.push(await storageKey(session.id))
    }
    expect(moved).toBeGreaterThanOrEqual(14)
    const state = await redisState()
    expect(state.hashes).toEqual(expected.sort())
    expect(state.members).toEqual(state.hashes)
    expect(await sessions.count()).toBe(expected.length)
  })

  it('writes nothing anywhere for a regenerate or write that lost to a destroy', async () => {
    const sessions = createSessions<Data>({
      store: upstashStore({ redis: local.client() }),
      secrets: [SECRET],
    })
    const jar = new CookieJar()
    const first = await sessions.load(jar.request())
    first.set('user', 'ada')
    jar.update(await sessions.commit(first, new Response()))
    const loaded = await Promise.all(Array.from({ length: 30 }, () => sessions.load(jar.request())))
    const [destroyer, ...others] = loaded as [Session<Data>, ...Session<Data>[]]
    destroyer.destroy()
    await sessions.commit(destroyer, new Response())
    others.forEach((s, i) => {
      if (i % 2 === 0) s.regenerate()
      s.set(`k${i}`, i)
    })
    const responses = await Promise.all(others.map((s) => sessions.commit(s, new Response())))
    for (const response of responses) expect(response.headers.getSetCookie()).toEqual([])
    for (const s of others) expect(s.destroyed).toBe(true)
    expect(await redisState()).toEqual({ hashes: [], members: [] })
    expect(await sessions.count()).toBe(0)
  })
})

/** A stored value read back: `j` + JSON. */
const decoded = (value: Buffer | undefined) =>
  value === undefined ? undefined : JSON.parse(String(value).slice(1))

/**
 * Redis's view of sessions per user: for each user key, the `<handle>.<key>` members of its index and those the
 * records bound to it call for, and the users set's members. Every record checked to have a TTL, every index
 * the TTL of its latest member.
 */
async function userState() {
  const keys = ((await local.direct('KEYS', 'sess:*')) as Buffer[]).map(String)
  const indexed: Record<string, string[]> = {}
  const bound: Record<string, string[]> = {}
  for (const key of keys) {
    if (key.startsWith('sess:u:')) {
      const members = (await local.direct('ZRANGE', key, '0', '-1')) as Buffer[]
      indexed[key.slice('sess:u:'.length)] = members.map(String).sort()
      expect(Number(await local.direct('PTTL', key))).toBeGreaterThan(0)
    } else if (/^sess:[\w-]{43}$/.test(key)) {
      const [handle, user] = (await local.direct('HMGET', key, 'm:handle', 'm:user')) as (
        | Buffer
        | undefined
      )[]
      const owner = decoded(user ?? undefined) as { key: string } | undefined
      if (owner) {
        bound[owner.key] ??= []
        bound[owner.key]?.push(`${decoded(handle ?? undefined)}.${key.slice('sess:'.length)}`)
      }
    }
  }
  for (const members of Object.values(bound)) members.sort()
  const users = ((await local.direct('ZRANGE', 'sess:users', '0', '-1')) as Buffer[]).map(String).sort()
  return { indexed, bound, users }
}

describe('sessions per user racing on 3 users with 12 sessions each, over Upstash', () => {
  it("keeps each user's index naming exactly the sessions bound to that user, whatever commits first", async () => {
    const sessions = createSessions<Data>({
      store: upstashStore({ redis: local.client() }),
      secrets: [SECRET],
    })
    const users = ['ada', 'bob', 'eve']
    const devices = await Promise.all(
      Array.from({ length: 36 }, async (_, n) => {
        const jar = new CookieJar()
        const s = await sessions.load(jar.request())
        s.set('n', n).setUser(users[n % 3] as string)
        jar.update(await sessions.commit(s, new Response()))
        return jar
      }),
    )
    // Each device loads two requests at once, then both commit alongside everyone else's and a revoke-all of
    // eve: regenerates, logins as another user, logouts, unbinding, plain changes.
    const actions: ((s: Session<Data>) => void)[] = [
      (s) => s.regenerate(),
      (s) => s.setUser(users[(Number(s.get('n')) + 1) % 3] as string),
      (s) => s.destroy(),
      (s) => s.setUser(null),
      (s) => s.set('late', true),
      (s) => s.regenerate().set('late', true),
    ]
    const loaded = await Promise.all(
      devices.map(async (jar, n) => {
        const pair = await Promise.all([sessions.load(jar.request()), sessions.load(jar.request())])
        for (const [i, s] of pair.entries()) actions[(n + i * 2) % actions.length]?.(s)
        return pair
      }),
    )
    const commits = shuffled(loaded.flat(), 7).map((s) => () => sessions.commit(s, new Response()))
    const revoke = () => sessions.revokeUserSessions('eve')
    await Promise.all([...commits.slice(0, 36), revoke, ...commits.slice(36)].map((run) => run()))

    const state = await userState()
    expect(state.indexed).toEqual(state.bound)
    expect(state.users).toEqual(Object.keys(state.bound).sort())
    expect(await sessions.countUsers()).toBe(Object.keys(state.bound).length)
    let listed = 0
    for (const user of users) {
      const list = await sessions.listUserSessions(user)
      listed += list.length
      // The race leaves sessions to check for the users nobody revoked (a revoke-all of eve also ends her
      // sessions regenerated while it ran, so how many of hers survive depends on the interleaving).
      if (user !== 'eve') expect(list.length, user).toBeGreaterThan(0)
    }
    expect(listed).toBe(Object.values(state.bound).flat().length)
    const { hashes, members } = await redisState()
    expect(members).toEqual(hashes)
  })
})
