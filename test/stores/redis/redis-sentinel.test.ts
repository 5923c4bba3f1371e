/**
 * @module Sentinel failover with redisStore(): a master, one replica and three Sentinels on 127.0.0.1; the master
 * is killed while requests keep coming. No acknowledged write may be lost, every failure must be ERR_STORE, and
 * the ioredis client must follow the promoted replica by itself.
 */
import { createSessions, SessionError, type Sessions } from 'edge-session'
import { redisStore } from 'edge-session/stores/redis'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CookieJar } from '../../support/jar.ts'
import {
  infoField,
  RedisNodes,
  replicaSynced,
  type SentinelGroup,
  sentinelMasterPort,
  sleep,
  startSentinelGroup,
} from '../../support/redis-nodes.ts'

const NAME = 'sessions'
const SECRET = 'sentinel-test-secret-0123456789abcdefghijklm'

let nodes: RedisNodes
let group: SentinelGroup
let client: Redis

beforeAll(async () => {
  nodes = await RedisNodes.create()
  group = await startSentinelGroup(nodes, { name: NAME, downAfter: 500, failoverTimeout: 2_000 })
  // The options redisStore's documentation recommends for Sentinel: fail fast while there is no master, never
  // queue or resend a write to land later, find the new master quickly.
  client = new Redis({
    sentinels: group.sentinels.map((sentinel) => ({ host: '127.0.0.1', port: sentinel.port })),
    name: NAME,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 500,
    commandTimeout: 2_000,
    retryStrategy: () => 100,
    sentinelRetryStrategy: () => 100,
    // Not failoverDetector: a +switch-master arriving while the client reconnects can end it for good.
  })
  // Connection errors reach the calls that fail; without a listener ioredis would also log each retry.
  client.on('error', () => {})
  await client.connect()
})

afterAll(async () => {
  client?.disconnect()
  await nodes?.stop()
})

/** A browser with one session, and what the test knows of its visit count. */
interface User {
  name: string
  jar: CookieJar
  /** The count of the last commit that succeeded. */
  confirmed: number
  /** Counts of later commits that failed: each may or may not have reached Redis. */
  attempted: number[]
}

type Outcome = 'ok' | 'failed'

describe('redisStore under Sentinel', () => {
  it('loses no acknowledged session when the master dies, and follows the promoted replica', async () => {
    const prefix = 'failover:'
    // Durable: a write counts as done only once the replica has it.
    const durable = createSessions<{ user?: string; visits?: number }>({
      store: redisStore({ client, prefix, waitForReplicas: { replicas: 1, timeout: 500 } }),
      secrets: [SECRET],
      storeTimeout: 3_000,
    })
    // The same client and records without waitForReplicas: shows when plain writes work again.
    const plain = createSessions<{ user?: string; visits?: number }>({
      store: redisStore({ client, prefix }),
      secrets: [SECRET],
      storeTimeout: 3_000,
    })
    const users: User[] = []
    const failures: { at: number; phase: string; cause: string }[] = []
    let phase = 'before the kill'

    function storeFailure(error: unknown): void {
      // The only failure a user may see: ERR_STORE, with the store's error as its cause.
      expect(error).toBeInstanceOf(SessionError)
      expect(error).toMatchObject({ code: 'ERR_STORE' })
      const cause = (error as SessionError).cause
      failures.push({ at: Date.now(), phase, cause: cause instanceof Error ? cause.message : String(cause) })
    }

    async function newUser(sessions: Sessions<{ user?: string; visits?: number }>): Promise<Outcome> {
      const name = `user-${users.length + failures.length}`
      const jar = new CookieJar()
      const session = await sessions.load(jar.request())
      session.set('user', name).set('visits', 1)
      try {
        jar.update(await sessions.commit(session, new Response()))
      } catch (error) {
        storeFailure(error)
        return 'failed'
      }
      users.push({ name, jar, confirmed: 1, attempted: [] })
      return 'ok'
    }

    /** One request of `user`: read the count, check no acknowledged write is missing, add one. */
    async function visit(user: User): Promise<Outcome> {
      let session: Awaited<ReturnType<typeof durable.load>>
      try {
        session = await durable.load(user.jar.request())
      } catch (error) {
        storeFailure(error)
        return 'failed'
      }
      expect(session.isNew, `${user.name}'s session is gone`).toBe(false)
      expect(session.get('user')).toBe(user.name)
      const visits = session.get('visits') ?? 0
      expect([user.confirmed, ...user.attempted], `${user.name}'s visits`).toContain(visits)
      session.set('visits', visits + 1)
      try {
        user.jar.update(await durable.commit(session, new Response()))
      } catch (error) {
        storeFailure(error)
        user.attempted.push(visits + 1)
        return 'failed'
      }
      user.confirmed = visits + 1
      user.attempted = []
      return 'ok'
    }

    // 20 sessions, each written twice (a new record, then a patch), all acknowledged by the replica.
    for (let i = 0; i < 20; i++) expect(await newUser(durable)).toBe('ok')
    for (const user of users) expect(await visit(user)).toBe('ok')
    const beforeKill = users.map((user) => ({ ...user }))
    expect(beforeKill.every((user) => user.confirmed === 2)).toBe(true)

    // The crash.
    const killedPort = group.master.port
    await group.master.kill()
    const killedAt = Date.now()
    phase = 'after the kill'

    let promotedAt: number | undefined // Sentinel names the replica as master
    let firstSuccessAt: number | undefined // a request succeeds again, through the same client
    let plainWriteAt: number | undefined // a new session without waitForReplicas is written
    let refusedAt: number | undefined // a durable write refused: no replica left to acknowledge it
    let rejoinedAt: number | undefined // the dead node is back, as a replica of the new master
    let durableWriteAt: number | undefined // durable writes work again
    let streak = 0
    const deadline = killedAt + 40_000

    for (let i = 0; streak < 20; i++) {
      if (Date.now() > deadline) {
        throw new Error(
          `no recovery within 40 s: ${JSON.stringify({ promotedAt, failures: failures.slice(-3) })}`,
        )
      }
      if (promotedAt === undefined) {
        const sentinel = group.sentinels[i % group.sentinels.length]
        if (sentinel && (await sentinelMasterPort(sentinel, NAME)) === group.replica.port)
          promotedAt = Date.now()
      }
      const user = users[i % users.length] as User
      const outcomes = [await visit(user)]
      if (i % 3 === 0) outcomes.push(await newUser(durable))
      if (i % 3 === 1) {
        const made = await newUser(plain)
        outcomes.push(made)
        if (made === 'ok') plainWriteAt ??= Date.now()
      }
      if (outcomes.includes('ok')) firstSuccessAt ??= Date.now()
      // A write refused by WAIT ran on a master: the client has found the promoted replica.
      if (failures.at(-1)?.cause.includes('(WAIT)')) refusedAt ??= Date.now()

      // The old master comes back (a restarted machine), as a replica of the new one: durable writes resume.
      if (rejoinedAt === undefined && refusedAt !== undefined && plainWriteAt !== undefined) {
        const node = await nodes.start('old-master', [`replicaof 127.0.0.1 ${group.replica.port}`], {
          port: killedPort,
        })
        await replicaSynced(node, 'the old master to sync as a replica')
        rejoinedAt = Date.now()
        phase = 'replica back'
      }
      if (rejoinedAt !== undefined && outcomes.every((outcome) => outcome === 'ok')) {
        durableWriteAt ??= Date.now()
        streak++
      } else {
        streak = 0
      }
      await sleep(20)
    }

    // The same client object now talks to the promoted replica.
    const server = await client.info('server')
    expect(infoField(server, 'tcp_port')).toBe(String(group.replica.port))
    expect(infoField(await client.info('replication'), 'role')).toBe('master')

    // Every session committed before the kill is there, with every acknowledged write; so is every later one.
    for (const before of beforeKill) {
      const user = users.find((candidate) => candidate.name === before.name) as User
      const session = await durable.load(user.jar.request())
      expect(session.isNew).toBe(false)
      expect(session.get('user')).toBe(user.name)
      expect(session.get('visits')).toBeGreaterThanOrEqual(2)
    }
    for (const user of users) {
      const session = await plain.load(user.jar.request())
      expect(session.isNew, user.name).toBe(false)
      expect([user.confirmed, ...user.attempted]).toContain(session.get('visits'))
    }
    // New sessions work, durable ones included.
    for (let i = 0; i < 5; i++) expect(await newUser(durable)).toBe('ok')

    const count = (phase: string, wait: boolean) =>
      failures.filter((f) => f.phase === phase && f.cause.includes('(WAIT)') === wait).length
    const unreachable = count('after the kill', false)
    const refused = count('after the kill', true)
    expect(failures.filter((failure) => failure.phase === 'before the kill')).toEqual([])
    expect(unreachable).toBeGreaterThan(0)
    expect(refused).toBeGreaterThan(0)
    const since = (at: number | undefined) => (at === undefined ? 'never' : `${at - killedAt} ms`)
    console.log(
      [
        'Sentinel failover with redisStore (down-after-milliseconds 500, failover-timeout 2000):',
        `  Sentinel promoted the replica after ${since(promotedAt)}`,
        `  first request served again (same ioredis client, new master) after ${since(firstSuccessAt)}`,
        `  first new session without waitForReplicas after ${since(plainWriteAt)}`,
        `  durable writes (waitForReplicas 1) refused until a replica was back; it rejoined after ${since(rejoinedAt)}`,
        `  durable writes resumed after ${since(durableWriteAt)}`,
        `  requests failed with ERR_STORE: ${unreachable} with no master reachable, ${refused} refused by WAIT ` +
          `(no replica to acknowledge), ${count('replica back', false) + count('replica back', true)} after the ` +
          'replica rejoined',
        `  sessions checked: ${users.length}, none lost`,
      ].join('\n'),
    )
  }, 60_000)
})
