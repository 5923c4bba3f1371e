/**
 * @module The short load test, part of `npm test`: the Node example process on the memory store and on the local
 * Upstash endpoint, a few seconds each with many distinct sessions. Zero errors, no lost updates. The long
 * version, with memory figures, is `npm run test:load` (test/load/example.load.ts).
 */
import { afterAll, describe, expect, it } from 'vitest'
import type { ExampleProcess } from '../support/examples.ts'
import { useLocalUpstash } from '../support/use-local-upstash.ts'
import { describeResult, type LoadResult, runLoad, startNodeExample, startUpstashExample } from './harness.ts'

const CLIENTS = 50
const DURATION_MS = 3000

const local = useLocalUpstash({ resetEach: false })
const servers: ExampleProcess[] = []

// Before the endpoint stops (afterAll hooks run last registered first).
afterAll(async () => {
  for (const server of servers) await server.stop()
})

/**
 * Drives `server` with CLIENTS clients for DURATION_MS and checks what every run must show: each client made
 * several requests in sequence, so a lost update would show (about 150 to 250 a second here); zero errors, no
 * lost updates.
 */
async function loadWithoutLoss(server: ExampleProcess, name: string): Promise<LoadResult> {
  const result = await runLoad({
    url: server.url,
    clients: CLIENTS,
    durationMs: DURATION_MS,
    maxRequests: 200_000,
    pid: server.pid,
  })
  console.log(describeResult(name, result))
  expect(result.requests).toBeGreaterThanOrEqual(CLIENTS * 4)
  expect({ errors: result.errors, lostUpdates: result.lostUpdates }, result.firstErrors.join('\n')).toEqual({
    errors: 0,
    lostUpdates: 0,
  })
  expect(result.clientsWithLostUpdates).toBe(0)
  return result
}

describe('the Node example under load', () => {
  it(`serves ${CLIENTS} clients on the memory store for 3 s: zero errors, no lost updates`, async () => {
    const server = await startNodeExample()
    servers.push(server)
    expect(server.output()).toMatch(/memory store/)
    await loadWithoutLoss(server, 'memory')
  }, 60_000)

  it(`serves ${CLIENTS} clients on Upstash for 3 s: zero errors, no lost updates, one Redis hash each`, async () => {
    await local.reset()
    const server = await startUpstashExample(local)
    servers.push(server)
    expect(server.output()).toMatch(/Upstash Redis store/)
    const result = await loadWithoutLoss(server, 'upstash')
    const keys = ((await local.direct('KEYS', 'sess:*')) as Buffer[]).map(String)
    expect(keys.filter((key) => key !== 'sess:#live')).toHaveLength(CLIENTS)
    expect(local.endpoint.requestCount).toBeGreaterThan(result.requests)
  }, 60_000)
})
