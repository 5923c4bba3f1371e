/**
 * @module Store round trips per kind of request, counted: calls the sessions layer makes to the memory store (a
 * counting wrapper), and HTTP requests the Upstash store sends to the local endpoint (its own counter).
 */

import { memoryStore } from 'edge-session/stores/memory'
import { upstashStore } from 'edge-session/stores/upstash'
import { countingStore } from '../test/support/counting-store.ts'
import { manualClock } from '../test/support/jar.ts'
import type { LocalUpstash } from '../test/support/local-upstash.ts'
import { Client } from './requests.ts'
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
}

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

/** A subject for a client, over an app built here (its own store and clock). */
function subjectOf(id: string, fetch: (request: Request) => Response | Promise<Response>): Subject {
  return { id, library: 'edge-session', store: 'memory', label: id, fetch }
}

/**
 * Runs every kind of request `repeat` times against edge-session on the memory store and on the Upstash store,
 * counting store round trips. A kind whose count differs between repetitions throws: counts are not averages.
 */
export async function countRoundTrips(upstash: LocalUpstash, repeat = 3): Promise<RoundTripRow[]> {
  const memoryClock = manualClock(Date.now())
  const memory = countingStore(memoryStore())
  const memoryApp = edgeSessionApp(memory, memoryClock.now)
  const upstashClock = manualClock(Date.now())
  const upstashApp = edgeSessionApp(
    upstashStore({ redis: upstash.client(), prefix: 'bench-round-trips:' }),
    upstashClock.now,
  )
  const rows: RoundTripRow[] = []
  for (const step of STEPS) {
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

      row = {
        kind: step.kind,
        request: step.request,
        memory: { calls: methods.length, methods: methods.join(', ') },
        upstash: { requests, commands },
      }
      counts.add(JSON.stringify([row.memory, row.upstash]))
    }
    if (counts.size !== 1 || !row) {
      throw new Error(`round trips of "${step.kind}" differ between repetitions: ${[...counts].join(' / ')}`)
    }
    rows.push(row)
  }
  return rows
}
