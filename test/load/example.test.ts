/**
 * @module The short load test, part of `npm test`: the Node example process on the memory store and on the local
 * Upstash endpoint, a few seconds each with many distinct sessions. Zero errors, no lost updates. The long
 * version, with memory figures, is `npm run test:load` (test/load/example.load.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ExampleProcess } from '../support/examples.ts'
import { type LocalUpstash, startLocalUpstash } from '../support/local-upstash.ts'
import { describeResult, runLoad, startNodeExample, startUpstashExample } from './harness.ts'

const CLIENTS = 50
const DURATION_MS = 3000

let local: LocalUpstash
const servers: ExampleProcess[] = []

beforeAll(async () => {
  local = await startLocalUpstash()
})

afterAll(async () => {
  for (const server of servers) await server.stop()
  await local?.stop()
})

describe('the Node example under load', () => {
  it(`serves ${CLIENTS} clients on the memory store for 3 s: zero errors, no lost updates`, async () => {
    const server = await startNodeExample()
    servers.push(server)
    expect(server.output()).toMatch(/memory store/)
    const result = await runLoad({
      url: server.url,
      clients: CLIENTS,
      durationMs: DURATION_MS,
      maxRequests: 200_000,
      pid: server.pid,
    })
    console.log(describeResult('memory', result))
    expect(result.requests).toBeGreaterThanOrEqual(CLIENTS * 4)
    expect({ errors: result.errors, lostUpdates: result.lostUpdates }, result.firstErrors.join('\n')).toEqual(
      {
        errors: 0,
        lostUpdates: 0,
      },
    )
    expect(result.clientsWithLostUpdates).toBe(0)
  }, 60_000)

  it(`serves ${CLIENTS} clients on Upstash for 3 s: zero errors, no lost updates, one Redis hash each`, async () => {
    await local.reset()
    const server = await startUpstashExample(local)
    servers.push(server)
    expect(server.output()).toMatch(/Upstash Redis store/)
    const result = await runLoad({
      url: server.url,
      clients: CLIENTS,
      durationMs: DURATION_MS,
      maxRequests: 200_000,
      pid: server.pid,
    })
    console.log(describeResult('upstash', result))
    // Each client made several requests in sequence, so a lost update would show (about 150 to 250 a second here).
    expect(result.requests).toBeGreaterThanOrEqual(CLIENTS * 4)
    expect({ errors: result.errors, lostUpdates: result.lostUpdates }, result.firstErrors.join('\n')).toEqual(
      {
        errors: 0,
        lostUpdates: 0,
      },
    )
    expect(result.clientsWithLostUpdates).toBe(0)
    const keys = ((await local.direct('KEYS', 'sess:*')) as Buffer[]).map(String)
    expect(keys.filter((key) => key !== 'sess:#live')).toHaveLength(CLIENTS)
    expect(local.endpoint.requestCount).toBeGreaterThan(result.requests)
  }, 60_000)
})
