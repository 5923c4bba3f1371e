/** @module BENCHMARKS.md and the console summary, from a {@link BenchResult}. */

import { CHART_PATH } from './chart.ts'
import type { BenchResult } from './harness.ts'

const us = (value: number) => (value >= 100 ? value.toFixed(0) : value.toFixed(1))
const ratio = (value: number) => `${value.toFixed(2)}x`

/** A ratio, with the range of the processes' own medians when several processes measured it. */
function spread(value: number, perProcess: readonly number[] | undefined): string {
  if (!perProcess || perProcess.length < 2) return ratio(value)
  return `${ratio(value)} (${Math.min(...perProcess).toFixed(2)}–${Math.max(...perProcess).toFixed(2)})`
}

/**
 * A Markdown table with its columns padded to one width, as the repository's formatter writes them (so the
 * generated file passes `npm run lint`). `right` lists the columns aligned to the right (numbers).
 */
function table(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  right: readonly number[] = [],
): string {
  const widths = header.map((cell, i) =>
    Math.max(3, cell.length, ...rows.map((row) => (row[i] ?? '').length)),
  )
  const pad = (cell: string, i: number) =>
    right.includes(i) ? cell.padStart(widths[i] as number) : cell.padEnd(widths[i] as number)
  const line = (cells: readonly string[]) => `| ${cells.map(pad).join(' | ')} |`
  const rule = widths.map((width, i) => (right.includes(i) ? `${'-'.repeat(width - 1)}:` : '-'.repeat(width)))
  return [line(header), `| ${rule.join(' | ')} |`, ...rows.map(line)].join('\n')
}

export function perRequestTable(result: BenchResult): string {
  return table(
    ['Subject', 'Store', 'Read µs', 'Read ratio', 'Write µs', 'Write ratio', 'Cookie bytes'],
    result.paired.map((row) => [
      row.label,
      row.store,
      us(row.read.us),
      spread(row.read.ratio, row.read.processRatios),
      us(row.write.us),
      spread(row.write.ratio, row.write.processRatios),
      String(row.cookieBytes),
    ]),
    [2, 3, 4, 5, 6],
  )
}

export function targetsTable(result: BenchResult): string {
  return table(
    ['Target', 'Limit', 'Measured', ''],
    result.targets.map((t) => [t.name, t.limit, t.measured, t.pass ? 'PASS' : 'MISS']),
  )
}

export function microTable(result: BenchResult): string | null {
  return (
    result.micro &&
    table(
      ['Operation', 'µs per call', 'What it is'],
      result.micro.map((row) => [row.name, row.us.toFixed(2), row.note]),
      [1],
    )
  )
}

/** The cookie cache's figures: read latency on a delayed Upstash, and a cached read's time per request. */
export function cookieCacheTable(result: BenchResult): string | null {
  const figures = result.cookieCache
  if (!figures) return null
  const { latency, cpu } = figures
  return table(
    ['Read-only request', 'Median', 'Ratio'],
    [
      [
        `Upstash + ${figures.delayMs} ms per call, no cache: latency`,
        `${latency.withoutMs.toFixed(2)} ms`,
        '',
      ],
      [
        `Upstash + ${figures.delayMs} ms per call, warm cookie cache: latency`,
        `${latency.withMs.toFixed(2)} ms`,
        ratio(latency.withMs / latency.withoutMs),
      ],
      ['no session (baseline): time per request', `${cpu.baselineUs.toFixed(1)} µs`, '1.00x'],
      ['memory store read: time per request', `${cpu.memoryUs.toFixed(1)} µs`, ratio(cpu.memoryRatio)],
      ['warm cookie cache read: time per request', `${cpu.cachedUs.toFixed(1)} µs`, ratio(cpu.cachedRatio)],
      ['warm cookie cache read / memory store read', '', ratio(cpu.cachedToMemory)],
    ],
    [1, 2],
  )
}

/** The round trips per request kind, per store. */
function roundTripTable(result: BenchResult): string | null {
  const withSql = result.roundTrips?.some((row) => row.sql) ?? false
  return (
    result.roundTrips &&
    table(
      [
        'Request',
        'What it does',
        'Memory store calls',
        'Upstash HTTP requests (Redis commands)',
        ...(withSql ? ['MySQL statements', 'PostgreSQL statements', 'D1 calls'] : []),
        'Cookie store',
      ],
      result.roundTrips.map((row) => [
        row.kind,
        row.request,
        row.memory.calls === 0 ? '0' : `${row.memory.calls} (${row.memory.methods})`,
        `${row.upstash.requests} (${row.upstash.commands})`,
        ...(withSql
          ? [String(row.sql?.mysql ?? '–'), String(row.sql?.postgres ?? '–'), String(row.sql?.d1 ?? '–')]
          : []),
        row.cookie ?? '0',
      ]),
    )
  )
}

export function markdown(result: BenchResult, command: string): string {
  const { machine, options } = result
  const date = result.startedAt.slice(0, 10)
  const roundTrips = roundTripTable(result)
  const micro = microTable(result)
  const http = result.http
    ? table(
        [
          'Server',
          'Requests/s',
          'Ratio to bare',
          'Server CPU µs/request',
          'CPU ratio',
          'p50 ms',
          'p99 ms',
          'Failed',
        ],
        result.http.map((row) => [
          row.label,
          row.rps.toFixed(0),
          ratio(row.ratio),
          row.cpuUs === null ? 'n/a' : row.cpuUs.toFixed(0),
          row.cpuRatio === null ? 'n/a' : ratio(row.cpuRatio),
          row.p50.toFixed(1),
          row.p99.toFixed(1),
          String(row.failures),
        ]),
        [1, 2, 3, 4, 5, 6, 7],
      )
    : '_Not run (`--no-http`)._'
  const versions = Object.entries(result.versions)
    .map(([name, version]) => `${name} ${version}`)
    .join(', ')
  const httpOptions = options.http
  return `# Benchmarks

Written by \`${command}\` (\`bench/run.ts\`) on ${date}; it took ${Math.round(result.seconds)} s. Do not edit by hand:
run it again. Figures are from one machine and one run; the ratios are what carries over to other machines.

![Cost per request of each subject, read and write: µs on a log scale, with the ratio to no session](${CHART_PATH})

## Machine

${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB; Node ${machine.node} (${machine.platform}).
Load average (1 min) ${machine.loadStart.toFixed(2)} at the start, ${machine.loadEnd.toFixed(2)} at the end: other
work shared the machine, which the paired ratios below are designed to cancel.

## Cost per request, against no session

One Hono app with the same routes for every subject: \`POST /login\` once, then \`GET /count\` (read the counter)
and \`POST /count\` (increment it). The baseline serves the same routes with no session. Each subject is first
checked to keep its counter (0, 1, 2, read back). Requests go to \`app.fetch\` in this process (no network): each
\`Request\` is built before the clock starts and carries the cookies the previous response left, as a browser's
would, and is sent again while they stay the same; only \`fetch\` is timed. Every handler returns \`c.text()\`,
whose \`Response\` (a web stream on Node 20) is most of the baseline's cost.

**Ratios are medians of paired rounds**: in each of ${options.paired.rounds} rounds the baseline and the subject
run back to back (a batch of about ${options.paired.batchMs} ms each, which goes first alternating), and the ratio
of that pair is kept; a process's figure is the median of those per-round ratios, so a machine whose speed drifts
(other processes, frequency scaling) moves both halves of a pair alike. ${options.paired.processes} processes, one
after another, each measure every subject this way (a process's JIT settles on one code layout for its whole life,
which moves all its ratios by several per cent); the table gives the median of the processes' figures, and in
brackets their range. The µs columns are medians of the per-round mean times and vary more than the ratios do.

${perRequestTable(result)}

"Cookie bytes" is the \`Cookie\` header the browser sends back (user name and count in the session).
Upstash runs through a local endpoint speaking the Upstash REST protocol to a real redis-server on this
machine, so its figures are loopback round trips, not a real network's. MySQL (MariaDB) and PostgreSQL run
from Debian's packages on this machine, through mysql2 and postgres.js over loopback; D1 is Miniflare's, in the
measuring process, where every call crosses from Node to workerd and back: its figure is mostly that bridge. Peers are configured as their
READMEs advise: hono-sessions with an \`encryptionKey\` and \`expireAfterSeconds\`, @hono/session with
\`duration\`, iron-session through a cookie jar over Hono's cookie helpers.

## Targets

${targetsTable(result)}

"Faster than every peer" compares rows of the same store kind (memory with memory, sealed cookie with sealed
cookie) and the same request kind; no peer keeps sessions in Upstash or SQL, so those rows have no counterpart.
A sealed cookie write is two Web Crypto calls in sequence (encrypt, then MAC); see the micro figures for what one
costs here.

## The store contract before and after the restructuring

Measured once, when the sessions layer was split into modules and the store contract became \`T | Promise<T>\`
(no hidden fast path: a plain answer from the memory store is taken with no timer and no await). Commit 6c6b316
(before) and the restructured code with sessions per user (after), three alternating runs each of
\`npm run bench -- --rounds 21 --processes 3 --no-http --no-round-trips --no-micro --only edge-memory --no-write\`
on 2026-12-01, other work sharing the machine; each figure is that run's median ratio to the baseline:

| Memory store | Before (3 runs)     | Median | After (3 runs)      | Median |
| ------------ | ------------------- | -----: | ------------------- | -----: |
| read         | 1.50x, 1.42x, 1.26x |  1.42x | 1.48x, 1.40x, 1.23x |  1.40x |
| write        | 1.60x, 1.61x, 1.57x |  1.60x | 1.55x, 1.67x, 1.60x |  1.60x |

## Store round trips per request

Counted, not estimated: the calls the sessions layer made to a counting wrapper of the memory store, and the HTTP
requests the Upstash store sent to the endpoint (which counts them, with the Redis commands they carried). Each
kind ran ${options.roundTripRepeat} times with the same count. A sealed cookie store has no store to call.
The SQL columns count what each store's driver was asked to do: statements sent through the mysql2 pool
(\`query\`) or postgres.js (\`unsafe\`), and for D1 each \`batch()\` (one request, its statements in one
transaction) or statement run on its own (\`first\`, \`all\`, \`run\`).

${roundTrips ?? '_Not run._'}

## Cookie cache

${
  result.cookieCache
    ? `\`cookieCache: { maxAge: 300 }\` on the Upstash store (the local endpoint), every store call delayed by
${result.cookieCache.delayMs} ms, as a distant region's round trip would be. Latency: the median of
${result.cookieCache.latency.requests} read-only requests (\`GET /count\`) timed one by one, without the cache and with a warm one
(no store call). Time per request: ${result.cookieCache.cpu.rounds} paired rounds of the baseline, the memory store's read and the
cached read, order rotating; ratios are medians of per-round ratios (the target: a cached read within 2x of the
memory store's read).

${cookieCacheTable(result)}`
    : '_Not run (`--no-cookie-cache`)._'
}

## Micro figures

Median over ${options.micro ? options.micro.rounds : 0} rounds of the mean time per call, calls awaited one after another. "Uncached"
is a value this instance has not seen (made by another instance with the same secrets); "cached" the same
values again: a signed id already verified, or a seal already opened by this instance, costs no Web Crypto call.

${micro ?? '_Not run._'}

## HTTP throughput

${
  httpOptions
    ? `\`GET /api/session\` with a session cookie (so each request reads the session and counts a visit: a write) on
the Node example (\`examples/node/server.ts\`) and on a bare Hono app on @hono/node-server (\`bench/bare-server.ts\`,
the same JSON) with edge-session's middleware, against that bare app with no session. Each server runs in its own
process on 127.0.0.1; autocannon, in the benchmark's process, keeps ${httpOptions.connections} connections busy for
${httpOptions.seconds} s per run, ${httpOptions.rounds} paired rounds, order alternating. Ratios are medians of
per-round ratios.

On ${result.machine.cores} cores the load generator competes with the server and parses every response in
JavaScript, so throughput is partly the client's: a response that carries a \`Set-Cookie\` costs it more too.
"Server CPU µs/request" is the server process's own CPU time (user + system, read from /proc before and after each
run) divided by the requests it answered; it includes the kernel's work for its socket writes. The Node example
also runs its own middleware (\`X-Served-By\` set after the handler, same-origin checks).`
    : ''
}

${http}

## Profiling a row

\`node --cpu-prof --import tsx bench/profile.ts <subject id> <read|write> [seconds]\` runs one subject's requests
in a loop and writes a CPU profile (subject ids: ${result.paired.map((row) => `\`${row.id}\``).join(', ')}).

## Versions

${versions}.
`
}

/** The lines `npm run bench` prints. */
export function summary(result: BenchResult): string {
  const lines = [perRequestTable(result), '', targetsTable(result)]
  const trips = roundTripTable(result)
  if (trips) lines.push('', trips)
  const cache = cookieCacheTable(result)
  if (cache) lines.push('', cache)
  const micro = microTable(result)
  if (micro) lines.push('', micro)
  if (result.http) {
    lines.push('')
    for (const row of result.http) {
      const cpu = row.cpuRatio === null ? '' : `, server CPU ${ratio(row.cpuRatio)} of bare`
      lines.push(
        `${row.label}: ${row.rps.toFixed(0)} req/s, ${ratio(row.ratio)} of bare${cpu}, ${row.failures} failed`,
      )
    }
  }
  lines.push('', `${Math.round(result.seconds)} s`)
  return lines.join('\n')
}
