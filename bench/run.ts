/**
 * @module `npm run bench`: runs the whole benchmark, prints the tables and targets, and writes BENCHMARKS.md.
 *
 * Options: `--rounds N` (paired rounds per process), `--processes N` (processes that each measure every subject),
 * `--quick` (few rounds, short HTTP runs: a check, not figures to keep),
 * `--only id,id` (subjects to pair with the baseline), `--no-http`, `--no-micro`, `--no-round-trips`,
 * `--no-cookie-cache` (leaves out the cookie cache's latency and CPU figures),
 * `--no-sql` (leaves out the SQL stores and the database servers they need),
 * `--out FILE` (default BENCHMARKS.md), `--no-write`. Only a run with the default options writes
 * BENCHMARKS.md; any other writes only the file `--out` names. The chart goes to `docs/benchmarks.svg` beside it.
 * `--chart-only` measures nothing: it redraws the chart from the table already in the `--out` file.
 */

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { CHART_PATH, chartCaption, chartRows, perRequestSvg, rowsFromMarkdown } from './chart.ts'
import { type BenchOptions, DEFAULT_OPTIONS, runBench } from './harness.ts'
import { markdown, summary } from './report.ts'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string' },
    only: { type: 'string' },
    processes: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'no-http': { type: 'boolean', default: false },
    'no-micro': { type: 'boolean', default: false },
    'no-round-trips': { type: 'boolean', default: false },
    'no-cookie-cache': { type: 'boolean', default: false },
    'no-sql': { type: 'boolean', default: false },
    out: { type: 'string', default: 'BENCHMARKS.md' },
    'no-write': { type: 'boolean', default: false },
    'chart-only': { type: 'boolean', default: false },
  },
})

/** Writes the chart beside `out` (the Markdown file that links it). */
function writeChart(out: string, svg: string) {
  const path = join(dirname(out), CHART_PATH)
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, svg)
  console.error(`wrote ${path}`)
}

if (values['chart-only']) {
  const out = resolve(values.out)
  const text = readFileSync(out, 'utf8')
  const date = /on (\d{4}-\d{2}-\d{2})/.exec(text)?.[1] ?? 'an earlier run'
  writeChart(out, perRequestSvg(rowsFromMarkdown(text), `From ${values.out} of ${date}: ${chartCaption}`))
  process.exit(0)
}

const options: BenchOptions = structuredClone(DEFAULT_OPTIONS)
if (values.quick) {
  options.paired.rounds = 5
  options.paired.processes = 1
  if (options.micro) options.micro.rounds = 2
  if (options.http) options.http = { ...options.http, rounds: 1, seconds: 1 }
  if (options.cookieCache)
    options.cookieCache = { ...options.cookieCache, latencyRequests: 11, rounds: 5, batch: 500 }
}
if (values.rounds !== undefined) {
  const rounds = Number(values.rounds)
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer')
  options.paired.rounds = rounds
}
if (values.processes !== undefined) {
  const processes = Number(values.processes)
  if (!Number.isInteger(processes) || processes < 1) throw new Error('--processes must be a positive integer')
  options.paired.processes = processes
}
if (values['no-http']) options.http = false
if (values['no-micro']) options.micro = false
if (values['no-round-trips']) options.roundTripRepeat = 0
if (values['no-cookie-cache']) options.cookieCache = false
if (values['no-sql']) options.sql = false
if (values.only) options.only = values.only.split(',')
options.log = (line) => console.error(line)

const partial =
  values.quick ||
  values.only !== undefined ||
  values.rounds !== undefined ||
  values.processes !== undefined ||
  values['no-http'] ||
  values['no-micro'] ||
  values['no-round-trips'] ||
  values['no-cookie-cache'] ||
  values['no-sql']
const result = await runBench(options)
console.log(summary(result))
if (values['no-write'] || (partial && values.out === 'BENCHMARKS.md')) {
  console.error('BENCHMARKS.md not written: only a full run with the default options writes it')
} else {
  const out = resolve(values.out)
  const args = process.argv.slice(2)
  const command = args.length > 0 ? `npm run bench -- ${args.join(' ')}` : 'npm run bench'
  writeFileSync(out, markdown(result, command))
  console.error(`wrote ${values.out}`)
  const date = result.startedAt.slice(0, 10)
  writeChart(out, perRequestSvg(chartRows(result.paired), `npm run bench, ${date}: ${chartCaption}`))
}
const missed = result.targets.filter((t) => !t.pass)
if (missed.length > 0) console.error(`${missed.length} target(s) missed`)
