/**
 * @module The long load test (`npm run test:load`, about two minutes): the Node example process on the memory
 * store and on the local Upstash endpoint, ~30 s each with many distinct sessions, then a flood of new sessions,
 * then `memoryStore`'s bound under a flood in process. Prints its figures; exits non-zero when a check fails.
 *
 * Environment: LOAD_SECONDS (default 30) per run, LOAD_CLIENTS (default 200).
 */
import assert from 'node:assert/strict'
import { createSessions } from 'edge-session'
import { memoryStore } from 'edge-session/stores/memory'
import { startLocalUpstash } from '../support/local-upstash.ts'
import {
  describeResult,
  type LoadResult,
  levelsOff,
  runLoad,
  startNodeExample,
  startUpstashExample,
} from './harness.ts'

const seconds = Number(process.env.LOAD_SECONDS ?? 30)
const clients = Number(process.env.LOAD_CLIENTS ?? 200)
const failures: string[] = []

function check(name: string, condition: boolean, what: string): void {
  console.log(`  ${condition ? 'ok  ' : 'FAIL'} ${what}`)
  if (!condition) failures.push(`${name}: ${what}`)
}

function checkRun(name: string, result: LoadResult, options: { lostUpdates: boolean }): void {
  console.log(describeResult(name, result))
  check(name, result.requests > 0, 'requests were served')
  check(name, result.errors === 0, 'zero errors')
  if (options.lostUpdates) {
    check(name, result.lostUpdates === 0, 'no lost updates: every answer counted the visits its client made')
    check(
      name,
      result.clientsWithLostUpdates === 0,
      "each client's final visit count equals its request count",
    )
  }
  check(
    name,
    levelsOff(result.rss, 0.15),
    'server RSS levels off (last third within 15% of the middle third)',
  )
}

const durationMs = seconds * 1000
const maxRequests = 5_000_000

// 1. Memory store: many distinct sessions, each client with its own cookie jar.
{
  const server = await startNodeExample()
  try {
    assert.match(server.output(), /memory store/)
    const result = await runLoad({ url: server.url, clients, durationMs, maxRequests, pid: server.pid })
    checkRun(`memory store, ${clients} clients`, result, { lostUpdates: true })
  } finally {
    await server.stop()
  }
}

// 2. Upstash: the same, with the example keeping sessions in Redis through the local REST endpoint.
{
  const local = await startLocalUpstash()
  const server = await startUpstashExample(local)
  try {
    const result = await runLoad({ url: server.url, clients, durationMs, maxRequests, pid: server.pid })
    const name = `upstash store, ${clients} clients`
    checkRun(name, result, { lostUpdates: true })
    const hashes = ((await local.direct('KEYS', 'sess:*')) as Buffer[]).length - 1
    console.log(
      `  Redis holds ${hashes} session hashes; the endpoint served ${local.endpoint.requestCount} requests`,
    )
    check(name, hashes === clients, `the sessions live in Redis: one hash per client (${clients})`)
  } finally {
    await server.stop()
    await local.stop()
  }
}

// 3. A flood of new sessions on the memory store (default bound 10 000): no cookie kept, every request a session.
// V8 grows its heap lazily while it has room, so RSS alone could hide a leak behind deferred collections: the
// old space is capped at 64 MiB, where a leak would show as growth, then as a crash (errors).
{
  const server = await startNodeExample({}, ['--max-old-space-size=64'])
  try {
    const result = await runLoad({
      url: server.url,
      clients: 50,
      durationMs,
      maxRequests,
      flood: true,
      pid: server.pid,
    })
    checkRun('memory store (old space capped at 64 MiB), flood of new sessions', result, {
      lostUpdates: false,
    })
    check(
      'flood',
      result.requests > 15_000,
      `well over the sessions the store keeps (${result.requests} new sessions > 1.5 × 10 000)`,
    )
  } finally {
    await server.stop()
  }
}

// 4. memoryStore's bound in process: 100 000 new sessions into a store bounded at 1 000.
{
  const store = memoryStore({ maxSessions: 1000 })
  const sessions = createSessions({ store, secrets: 'load-test-secret-0123456789abcdefghijklmnop' })
  let largest = 0
  const heap: string[] = []
  const started = performance.now()
  for (let batch = 0; batch < 1000; batch++) {
    await Promise.all(
      Array.from({ length: 100 }, async () => {
        const s = await sessions.load(new Request('https://app.example/'))
        s.set('visits', 1)
        await sessions.commit(s, new Response())
      }),
    )
    largest = Math.max(largest, store.size)
    if (batch % 200 === 199) heap.push(`${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(1)}`)
  }
  console.log(
    `memoryStore bound: 100000 sessions in ${Math.round(performance.now() - started)} ms, largest size ${largest}, heap MiB every 20000: ${heap.join(', ')}`,
  )
  check('bound', largest <= 1000, 'never holds more than maxSessions (1000)')
  check('bound', (await sessions.count()) === 1000, 'holds exactly maxSessions at the end')
}

if (failures.length > 0) {
  console.error(`\n${failures.length} check(s) failed:\n${failures.join('\n')}`)
  process.exit(1)
}
console.log('\nload: every check passed')
