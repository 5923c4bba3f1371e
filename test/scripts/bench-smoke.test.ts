/**
 * @module The benchmark harness, run tiny: every subject and part produces its rows, so `npm run bench` cannot rot.
 * It checks that figures exist and make sense, not how fast anything is.
 */
import { describe, expect, it } from 'vitest'
import { CHART_PATH, chartRows, perRequestSvg, rowsFromMarkdown } from '../../bench/chart.ts'
import { runBench } from '../../bench/harness.ts'
import { markdown } from '../../bench/report.ts'

const SUBJECTS = [
  'baseline',
  'edge-memory',
  'edge-cookie',
  'edge-upstash',
  'edge-mysql',
  'edge-postgres',
  'edge-d1',
  'hono-session-memory',
  'hono-session-cookie',
  'hono-sessions-memory',
  'hono-sessions-cookie',
  'iron-session',
]

describe('npm run bench, one tiny round', () => {
  it('measures every subject, counts round trips, and writes every table', { timeout: 240_000 }, async () => {
    const result = await runBench({
      paired: { processes: 2, rounds: 1, batchMs: 1, warmup: 3, minBatch: 2, maxBatch: 4 },
      micro: { rounds: 1, cryptoOps: 2, fastOps: 10 },
      http: { rounds: 1, seconds: 0.3, connections: 2 },
      roundTripRepeat: 2,
      cookieCache: { delayMs: 20, latencyRequests: 3, rounds: 1, batch: 5 },
    })

    expect(result.paired.map((row) => row.id)).toEqual(SUBJECTS)
    for (const row of result.paired) {
      for (const kind of ['read', 'write'] as const) {
        expect(row[kind].us, `${row.id} ${kind}`).toBeGreaterThan(0)
        expect(Number.isFinite(row[kind].ratio), `${row.id} ${kind}`).toBe(true)
        // Two processes measured it, and their medians were combined.
        expect(row[kind].processRatios, `${row.id} ${kind}`).toHaveLength(2)
      }
      // Every session subject sets a cookie after logging in and counting; the baseline none.
      if (row.id === 'baseline') expect(row.cookieBytes).toBe(0)
      else expect(row.cookieBytes, row.id).toBeGreaterThan(20)
    }
    expect(result.targets.length).toBeGreaterThanOrEqual(8)

    // The design's round trips, counted: read-only 1, a change 2 (read + one write), lazy anonymous 0.
    const trips = Object.fromEntries((result.roundTrips ?? []).map((row) => [row.kind, row]))
    expect(trips.anonymous?.memory.calls).toBe(0)
    expect(trips.anonymous?.upstash.requests).toBe(0)
    expect(trips['read-only']?.memory.methods).toBe('get')
    expect(trips['read-only']?.upstash.requests).toBe(1)
    expect(trips['read-only, touch due']?.memory.methods).toBe('get, touch')
    expect(trips.changing?.memory.methods).toBe('get, patch')
    expect(trips.changing?.upstash.requests).toBe(2)
    expect(trips.new?.memory.methods).toBe('set')
    expect(trips.regenerate?.memory.methods).toBe('get, set')
    expect(trips.regenerate?.upstash.requests).toBe(2)
    expect(trips.destroy?.memory.methods).toBe('get, delete')
    // With the cookie cache: a warm read makes no call, a change only the write, a due touch only the touch.
    expect(trips['read-only, warm cache']?.memory.calls).toBe(0)
    expect(trips['read-only, warm cache']?.upstash.requests).toBe(0)
    expect(trips['changing, warm cache']?.memory.methods).toBe('patch')
    expect(trips['changing, warm cache']?.upstash.requests).toBe(1)
    expect(trips['touch due, warm cache']?.memory.methods).toBe('touch')
    expect(trips['touch due, warm cache']?.upstash.requests).toBe(1)
    // The delayed Upstash read pays its delay; a warm cache does not call the store at all.
    const cache = result.cookieCache
    expect(cache?.latency.withoutMs).toBeGreaterThanOrEqual(20)
    expect(cache?.latency.withMs).toBeLessThan(20)
    expect(cache?.cpu.cachedUs).toBeGreaterThan(0)
    expect(Number.isFinite(cache?.cpu.cachedToMemory)).toBe(true)
    expect(result.targets.map((t) => t.name)).toContain('cookie cache, warm read vs memory store read')
    // The SQL stores, counted at their drivers: one statement (or D1 call) per store call, a regenerate's
    // delete-and-insert included (one statement, or one D1 batch).
    for (const [kind, expected] of [
      ['anonymous', 0],
      ['read-only', 1],
      ['changing', 2],
      ['regenerate', 2],
      ['list user sessions', 2],
      ['read-only, warm cache', 0],
      ['changing, warm cache', 1],
      ['touch due, warm cache', 1],
    ] as const) {
      expect(trips[kind]?.sql, kind).toEqual({ mysql: expected, postgres: expected, d1: expected })
    }

    const micro = new Map((result.micro ?? []).map((row) => [row.name, row.us]))
    for (const name of [
      'createSessionId',
      'IdSigner.verify, uncached',
      'IdSigner.verify, cached',
      'seal (iron, keys derived once)',
      'unseal',
    ]) {
      expect(micro.get(name), name).toBeGreaterThan(0)
    }

    expect(result.http?.map((row) => row.id)).toEqual([
      'bare',
      'bare-memory',
      'bare-cookie',
      'example-memory',
      'example-cookie',
    ])
    for (const row of result.http ?? []) {
      expect(row.rps, row.id).toBeGreaterThan(0)
      expect(row.failures, row.id).toBe(0)
      // Read from /proc where there is one (Linux), else not measured.
      if (row.cpuUs !== null) expect(row.cpuUs, row.id).toBeGreaterThan(0)
    }

    const text = markdown(result, 'npm run bench')
    for (const heading of [
      '## Machine',
      '## Cost per request',
      '## Targets',
      '## Store round trips',
      '## Cookie cache',
      '## Micro figures',
      '## HTTP throughput',
    ]) {
      expect(text).toContain(heading)
    }
    expect(text).toContain(result.machine.node)
    expect(text).toContain('| MySQL statements | PostgreSQL statements | D1 calls |')

    // The chart: every subject with its read and write bars, linked above the tables; and `--chart-only`
    // reads back from the Markdown the figures the chart was drawn from.
    expect(text.indexOf(`](${CHART_PATH})`)).toBeGreaterThan(0)
    expect(text.indexOf(`](${CHART_PATH})`)).toBeLessThan(text.indexOf('| Subject'))
    const svg = perRequestSvg(chartRows(result.paired), 'smoke')
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/)
    for (const row of result.paired) expect(svg).toContain(`>${row.label}</text>`)
    expect(svg.match(/<rect x="\d+" y="\d+" width="[\d.]+" height="12"/g)).toHaveLength(
      2 * result.paired.length,
    )
    const parsed = rowsFromMarkdown(text)
    expect(parsed.map((row) => row.label)).toEqual(result.paired.map((row) => row.label))
    for (const [i, row] of parsed.entries()) {
      expect(row.read.ratio).toBeCloseTo(result.paired[i]?.read.ratio ?? Number.NaN, 2)
      expect(row.write.ratio).toBeCloseTo(result.paired[i]?.write.ratio ?? Number.NaN, 2)
    }
  })
})
