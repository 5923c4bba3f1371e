/**
 * @module Store round trips per kind of request, counted: calls the sessions layer makes to the memory store (a
 * counting wrapper), HTTP requests the Upstash store sends to the local endpoint (its own counter), and with the
 * SQL stores, the statements they send (MySQL, PostgreSQL) or the D1 calls they make (see `bench/sql.ts`).
 */

import { createSessions, type ServerStore, type Sessions } from 'edge-session'
import { memoryStore } from 'edge-session/stores/memory'
import { upstashStore } from 'edge-session/stores/upstash'
import { countingStore } from '../test/support/counting-store.ts'
import { CookieJar, manualClock } from '../test/support/jar.ts'
import type { LocalUpstash } from '../test/support/local-upstash.ts'
import { Client } from './requests.ts'
import type { CountedStore, SqlStores } from './sql.ts'
import { edgeSessionApp, type Subject } from './subjects.ts'

/** One kind of request, and what it cost each store. */
export interface RoundTripRow {
  kind: string
  /** What the request does. */
  request: string
  /** Memory store calls per request, and which (e.g. `get, patch`). */
  memory: { calls: number; methods: string }
  /** HTTP requests to the Upstash endpoint per request, and the Redis commands they carried. */
  upstash: { requests: number; commands: number }
  /** What the sealed cookie store does: no store call (`0`), or the call is unsupported there. */
  cookie?: string
  /** Statements sent per request (MySQL, PostgreSQL) and D1 round trips (a `batch()` or a lone statement). */
  sql?: SqlTrips
}

export interface SqlTrips {
  mysql: number
  postgres: number
  d1: number
}

const SQL_NAMES = ['mysql', 'postgres', 'd1'] as const

interface Step {
  kind: string
  request: string
  /** Brings a client to the state the step starts from (not counted). */
  prepare(client: Client, clock: ReturnType<typeof manualClock>): Promise<void>
  run(client: Client): Promise<unknown>
}

const newSession = async (client: Client) => {
  await client.send('POST', '/count')
}

const STEPS: readonly Step[] = [
  {
    kind: 'anonymous',
    request: 'GET /count, no cookie, nothing set',
    prepare: async () => {},
    run: (client) => client.send('GET', '/count'),
  },
  {
    kind: 'new',
    request: 'POST /count, no cookie: the first write creates the session',
    prepare: async () => {},
    run: (client) => client.send('POST', '/count'),
  },
  {
    kind: 'read-only',
    request: 'GET /count with the cookie, deadline not due',
    prepare: newSession,
    run: (client) => client.send('GET', '/count'),
  },
  {
    kind: 'read-only, touch due',
    request: 'GET /count with the cookie, touchInterval (60 s) passed',
    prepare: async (client, clock) => {
      await newSession(client)
      clock.advance(61_000)
    },
    run: (client) => client.send('GET', '/count'),
  },
  {
    kind: 'changing',
    request: 'POST /count with the cookie',
    prepare: newSession,
    run: (client) => client.send('POST', '/count'),
  },
  {
    kind: 'regenerate',
    request: 'POST /login with the cookie: new id, old record deleted',
    prepare: newSession,
    run: (client) => client.send('POST', '/login'),
  },
  {
    kind: 'destroy',
    request: 'POST /logout with the cookie',
    prepare: newSession,
    run: (client) => client.send('POST', '/logout'),
  },
]

/** The cookie cache's maxAge in its rows: longer than the touch interval, so a due touch finds the cache warm. */
const CACHE = { maxAge: 120 }

/** With `cookieCache`: each step starts with a warm cache (the session's first write issued it). */
const CACHE_STEPS: readonly Step[] = [
  {
    kind: 'read-only, warm cache',
    request: 'GET /count with the session and cache cookies (cookieCache: { maxAge: 120 })',
    prepare: newSession,
    run: (client) => client.send('GET', '/count'),
  },
  {
    kind: 'changing, warm cache',
    request: 'POST /count with a warm cache: the write alone',
    prepare: newSession,
    run: (client) => client.send('POST', '/count'),
  },
  {
    kind: 'touch due, warm cache',
    request: 'GET /count with a warm cache, touchInterval (60 s) passed: the touch alone',
    prepare: async (client, clock) => {
      await newSession(client)
      clock.advance(61_000)
    },
    run: (client) => client.send('GET', '/count'),
  },
]

type UserSessions = Sessions<Record<string, unknown>>

/** A user's devices, logged in before a per-user step (not counted). */
interface Devices {
  user: string
  /** A browser whose session is anonymous, ready to log in. */
  anonymous: CookieJar
  handles: string[]
}

/** Sessions per user: steps through the sessions API, since the counter app has no login of a user. */
interface UserStep {
  kind: string
  request: string
  /** How many devices of the user are logged in before the step. */
  devices: number
  run(sessions: UserSessions, devices: Devices): Promise<unknown>
}

const USER_STEPS: readonly UserStep[] = [
  {
    kind: 'login (setUser)',
    request:
      'setUser(userId) on a session with a cookie: new id, the old record and the index entry in one write',
    devices: 0,
    run: async (sessions, { user, anonymous }) => {
      const session = await sessions.load(anonymous.request())
      session.setUser(user)
      anonymous.update(await sessions.commit(session, new Response()))
    },
  },
  {
    kind: 'list user sessions',
    request: 'listUserSessions(userId), 3 sessions: the user index, then the records',
    devices: 3,
    run: (sessions, { user }) => sessions.listUserSessions(user),
  },
  {
    kind: 'revoke one session',
    request: 'revokeUserSession(userId, handle), 3 sessions',
    devices: 3,
    run: (sessions, { user, handles }) => sessions.revokeUserSession(user, handles[0] as string),
  },
  {
    kind: 'revoke all sessions',
    request: 'revokeUserSessions(userId, { except }), 3 sessions',
    devices: 3,
    run: (sessions, { user, handles }) => sessions.revokeUserSessions(user, { except: handles[0] as string }),
  },
  {
    kind: 'count users',
    request: 'countUsers(): users with a live session',
    devices: 1,
    run: (sessions) => sessions.countUsers(),
  },
]

/** Logs `count` devices of `user` in, and opens one more anonymous session (not counted). */
async function devicesOf(sessions: UserSessions, user: string, count: number): Promise<Devices> {
  const open = async (login: boolean) => {
    const jar = new CookieJar()
    const session = await sessions.load(jar.request())
    session.set('count', 1)
    if (login) session.setUser(user)
    jar.update(await sessions.commit(session, new Response()))
    return { jar, handle: session.handle }
  }
  const handles: string[] = []
  for (let i = 0; i < count; i++) handles.push((await open(true)).handle)
  return { user, anonymous: (await open(false)).jar, handles }
}

function sessionsOver(store: ServerStore, now: () => number): UserSessions {
  return createSessions<Record<string, unknown>>({ store, secrets: [USER_SECRET], now })
}

const USER_SECRET = 'round-trips-users-secret-0123456789abcdefgh'

/** A subject for a client, over an app built here (its own store and clock). */
function subjectOf(id: string, fetch: (request: Request) => Response | Promise<Response>): Subject {
  return { id, library: 'edge-session', store: 'memory', label: id, fetch }
}

/** A SQL store with an app and a clock of its own, for the counter-app steps. */
function sqlSubjects(sql: SqlStores | undefined, cache?: { maxAge: number }) {
  return SQL_NAMES.map((name) => {
    const counted = sql?.[name] as CountedStore<ServerStore> | undefined
    if (!counted) return undefined
    const clock = manualClock(Date.now())
    return { name, counted, clock, app: edgeSessionApp(counted.store, clock.now, cache) }
  }).filter((entry) => entry !== undefined)
}

/**
 * The counter-app steps, each run `repeat` times on the memory store (counted calls), the Upstash store (counted
 * HTTP requests) and, with `sql`, the SQL stores; with `cache`, every app keeps the cookie cache.
 */
async function countSteps(
  steps: readonly Step[],
  upstash: LocalUpstash,
  memory: ReturnType<typeof countingStore>,
  repeat: number,
  sql: SqlStores | undefined,
  cache?: { maxAge: number },
): Promise<RoundTripRow[]> {
  const sqlApps = sqlSubjects(sql, cache)
  const memoryClock = manualClock(Date.now())
  const memoryApp = edgeSessionApp(memory, memoryClock.now, cache)
  const upstashClock = manualClock(Date.now())
  const upstashApp = edgeSessionApp(
    upstashStore({
      redis: upstash.client(),
      prefix: cache ? 'bench-round-trips-cache:' : 'bench-round-trips:',
    }),
    upstashClock.now,
    cache,
  )
  const rows: RoundTripRow[] = []
  for (const step of steps) {
    const counts = new Set<string>()
    let row: RoundTripRow | undefined
    for (let i = 0; i < repeat; i++) {
      const memoryClient = new Client(subjectOf('memory', memoryApp.fetch))
      await step.prepare(memoryClient, memoryClock)
      memory.calls.length = 0
      await step.run(memoryClient)
      const methods = memory.calls.map((call) => call.method)

      const upstashClient = new Client(subjectOf('upstash', upstashApp.fetch))
      await step.prepare(upstashClient, upstashClock)
      upstash.endpoint.resetCounts()
      await step.run(upstashClient)
      const requests = upstash.endpoint.requestCount
      const commands = upstash.endpoint.commandCount

      let trips: SqlTrips | undefined
      for (const { name, counted, clock, app } of sqlApps) {
        const client = new Client(subjectOf(name, app.fetch))
        await step.prepare(client, clock)
        counted.reset()
        await step.run(client)
        trips = { ...(trips ?? { mysql: 0, postgres: 0, d1: 0 }), [name]: counted.count }
      }

      row = {
        kind: step.kind,
        request: step.request,
        memory: { calls: methods.length, methods: methods.join(', ') },
        upstash: { requests, commands },
        ...(trips ? { sql: trips } : {}),
        // The cookie store is the session already: a cookie cache is for server stores only.
        ...(cache ? { cookie: 'n/a' } : {}),
      }
      counts.add(JSON.stringify([row.memory, row.upstash, row.sql]))
    }
    if (counts.size !== 1 || !row) {
      throw new Error(`round trips of "${step.kind}" differ between repetitions: ${[...counts].join(' / ')}`)
    }
    rows.push(row)
  }
  return rows
}

/**
 * Runs every kind of request `repeat` times against edge-session on the memory store, on the Upstash store and,
 * with `sql`, on the SQL stores, counting store round trips. A kind whose count differs between repetitions
 * throws: counts are not averages.
 */
export async function countRoundTrips(
  upstash: LocalUpstash,
  repeat = 3,
  sql?: SqlStores,
): Promise<RoundTripRow[]> {
  const sqlSessions = sqlSubjects(sql).map((entry) => ({
    ...entry,
    sessions: sessionsOver(entry.counted.store, entry.clock.now),
  }))
  const memory = countingStore(memoryStore())
  const rows: RoundTripRow[] = [
    ...(await countSteps(STEPS, upstash, memory, repeat, sql)),
    ...(await countSteps(CACHE_STEPS, upstash, countingStore(memoryStore()), repeat, sql, CACHE)),
  ]
  const memoryClock = manualClock(Date.now())
  const upstashClock = manualClock(Date.now())
  const memorySessions = sessionsOver(memory, memoryClock.now)
  const upstashSessions = sessionsOver(
    upstashStore({ redis: upstash.client(), prefix: 'bench-round-trips-users:' }),
    upstashClock.now,
  )
  for (const step of USER_STEPS) {
    const counts = new Set<string>()
    let row: RoundTripRow | undefined
    for (let i = 0; i < repeat; i++) {
      // A user of its own per step and repetition: each starts from the same state.
      const user = `${step.kind}, ${i}`
      const memoryDevices = await devicesOf(memorySessions, user, step.devices)
      memory.calls.length = 0
      await step.run(memorySessions, memoryDevices)
      const methods = memory.calls.map((call) => call.method)

      const upstashDevices = await devicesOf(upstashSessions, user, step.devices)
      upstash.endpoint.resetCounts()
      await step.run(upstashSessions, upstashDevices)
      const upstashTrips = {
        requests: upstash.endpoint.requestCount,
        commands: upstash.endpoint.commandCount,
      }

      let trips: SqlTrips | undefined
      for (const { name, counted, sessions } of sqlSessions) {
        const devices = await devicesOf(sessions, user, step.devices)
        counted.reset()
        await step.run(sessions, devices)
        trips = { ...(trips ?? { mysql: 0, postgres: 0, d1: 0 }), [name]: counted.count }
      }
      row = {
        kind: step.kind,
        request: step.request,
        memory: { calls: methods.length, methods: methods.join(', ') },
        upstash: upstashTrips,
        ...(trips ? { sql: trips } : {}),
        // setUser seals the user into the cookie; listing, revoking and counting need a server record.
        cookie: step.kind.startsWith('login') ? '0' : 'ERR_UNSUPPORTED',
      }
      counts.add(JSON.stringify([row.memory, row.upstash, row.sql]))
    }
    if (counts.size !== 1 || !row) {
      throw new Error(`round trips of "${step.kind}" differ between repetitions: ${[...counts].join(' / ')}`)
    }
    rows.push(row)
  }
  return rows
}
