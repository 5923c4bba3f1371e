/**
 * @module The whole benchmark as one function: per-request cost against the baseline, store round trips, micro
 * figures and HTTP throughput, with the targets checked. `bench/run.ts` prints and writes it; the smoke test
 * runs it small.
 */

import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import { startLocalUpstash } from '../test/support/local-upstash.ts'
import { type CookieCacheFigures, type CookieCacheOptions, measureCookieCache } from './cookie-cache.ts'
import { type HttpOptions, type HttpRow, measureHttp } from './http.ts'
import { type MicroOptions, type MicroRow, measureMicro } from './micro.ts'
import { combineProcesses, type PairedOptions, type SubjectFigures } from './paired.ts'
import { countRoundTrips, type RoundTripRow } from './round-trips.ts'
import { openSqlStores, type RunningSqlServers, type SqlServers, startSqlServers } from './sql.ts'

export interface BenchOptions {
  /** `processes`: how many processes measure every subject, one after another (each all subjects, paired). */
  paired: Omit<PairedOptions, 'log'> & { processes: number }
  /** False skips the micro figures. */
  micro: MicroOptions | false
  /** False skips the HTTP part. */
  http: Omit<HttpOptions, 'log'> | false
  /** Repetitions of each round-trip count (they must agree); 0 skips them. */
  roundTripRepeat: number
  /** The cookie cache's latency and CPU figures; false or absent skips them. */
  cookieCache?: CookieCacheOptions | false
  /** Subject ids to measure (the baseline always is); all when absent. */
  only?: readonly string[]
  /** False leaves out the SQL stores (MariaDB, PostgreSQL, D1 through Miniflare); they are in by default. */
  sql?: boolean
  log?: (line: string) => void
}

/** What `npm run bench` runs. */
export const DEFAULT_OPTIONS: BenchOptions = {
  paired: { processes: 5, rounds: 41, batchMs: 10, warmup: 1000, minBatch: 5, maxBatch: 20_000 },
  micro: { rounds: 5, cryptoOps: 300, fastOps: 20_000 },
  http: { rounds: 3, seconds: 3, connections: 10 },
  roundTripRepeat: 3,
  cookieCache: { delayMs: 20, latencyRequests: 41, rounds: 21, batch: 2000 },
}

export interface Machine {
  cpu: string
  cores: number
  memoryGiB: number
  node: string
  platform: string
  /** 1-minute load average when the run started and when it ended. */
  loadStart: number
  loadEnd: number
}

export interface TargetCheck {
  name: string
  limit: string
  measured: string
  pass: boolean
}

export interface BenchResult {
  startedAt: string
  seconds: number
  machine: Machine
  versions: Record<string, string>
  options: BenchOptions
  paired: SubjectFigures[]
  targets: TargetCheck[]
  roundTrips: RoundTripRow[] | null
  cookieCache: CookieCacheFigures | null
  micro: MicroRow[] | null
  http: HttpRow[] | null
}

const root = fileURLToPath(new URL('../', import.meta.url))

/**
 * Installed versions of the libraries compared, from their package.json: the peers from the bench's own
 * node_modules, the rest (hono, the library's own dependencies) from the repository's.
 */
function versions(): Record<string, string> {
  const names = [
    'hono',
    '@hono/node-server',
    '@hono/session',
    'hono-sessions',
    'iron-session',
    '@upstash/redis',
    'iron-webcrypto',
    'autocannon',
  ]
  const found: Record<string, string> = {}
  for (const name of names) {
    const own = `${root}bench/node_modules/${name}/package.json`
    const path = existsSync(own) ? own : `${root}node_modules/${name}/package.json`
    const pkg = JSON.parse(readFileSync(path, 'utf8')) as { version: string }
    found[name] = pkg.version
  }
  return found
}

/** The targets, each a ratio to the baseline (median of per-round ratios). */
export function checkTargets(rows: readonly SubjectFigures[]): TargetCheck[] {
  const limit = (name: string, value: number, max: number): TargetCheck => ({
    name,
    limit: `≤ ${max}x`,
    measured: `${value.toFixed(2)}x`,
    pass: value <= max,
  })
  const checks: TargetCheck[] = []
  const memory = rows.find((r) => r.id === 'edge-memory')
  if (memory) {
    checks.push(limit('memory store, read', memory.read.ratio, 1.3))
    checks.push(limit('memory store, write', memory.write.ratio, 1.7))
  }
  const cookie = rows.find((r) => r.id === 'edge-cookie')
  if (cookie) {
    checks.push(limit('sealed cookie store, read', cookie.read.ratio, 1.5))
    checks.push(limit('sealed cookie store, write', cookie.write.ratio, 10))
  }
  // Every edge-session row faster than every peer row of the same store kind and request kind.
  for (const store of ['memory', 'cookie'] as const) {
    for (const kind of ['read', 'write'] as const) {
      const ours = rows.filter((r) => r.library === 'edge-session' && r.store === store)
      const peers = rows.filter(
        (r) => r.library !== 'edge-session' && r.library !== 'none' && r.store === store,
      )
      if (ours.length === 0 || peers.length === 0) continue
      const slowest = ours.reduce((a, b) => (b[kind].ratio > a[kind].ratio ? b : a))
      const fastest = peers.reduce((a, b) => (b[kind].ratio < a[kind].ratio ? b : a))
      checks.push({
        name: `${store} ${kind}: edge-session faster than every peer`,
        limit: `< ${fastest[kind].ratio.toFixed(2)}x (${fastest.label})`,
        measured: `${slowest[kind].ratio.toFixed(2)}x`,
        pass: slowest[kind].ratio < fastest[kind].ratio,
      })
    }
  }
  return checks
}

/** The cookie cache's target: a read it answers costs at most twice the memory store's read. */
export function cookieCacheTarget(figures: CookieCacheFigures): TargetCheck {
  const value = figures.cpu.cachedToMemory
  return {
    name: 'cookie cache, warm read vs memory store read',
    limit: '≤ 2x',
    measured: `${value.toFixed(2)}x`,
    pass: value <= 2,
  }
}

/** Runs the paired measurement of every subject in a process of its own (bench/paired-child.ts). */
function measureInProcess(
  options: BenchOptions,
  sql: SqlServers | undefined,
  log: (line: string) => void,
): Promise<SubjectFigures[]> {
  const { processes: _, ...paired } = options.paired
  const argument = JSON.stringify({
    paired,
    ...(options.only ? { only: options.only } : {}),
    ...(sql ? { sql: { mysqlUrl: sql.mysqlUrl, postgresUrl: sql.postgresUrl } } : {}),
  })
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/paired-child.ts', argument], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
  })
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
    for (const line of chunk.toString().split('\n')) if (line.trim()) log(`  ${line}`)
  })
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`bench/paired-child.ts exited with ${code}:\n${stderr}`))
      try {
        resolve(JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as SubjectFigures[])
      } catch (error) {
        reject(new Error(`bench/paired-child.ts printed no figures: ${String(error)}\n${stderr}`))
      }
    })
  })
}

export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const log = options.log ?? (() => {})
  const started = performance.now()
  const startedAt = new Date().toISOString()
  const loadStart = loadavg()[0] as number
  const sqlSubjects = ['edge-mysql', 'edge-postgres', 'edge-d1']
  const wantSql =
    options.sql !== false &&
    (options.roundTripRepeat > 0 || !options.only || options.only.some((id) => sqlSubjects.includes(id)))
  let sql: RunningSqlServers | undefined
  if (wantSql) {
    log('starting MariaDB and PostgreSQL...')
    sql = await startSqlServers()
  }
  let paired: SubjectFigures[]
  let roundTrips: RoundTripRow[] | null = null
  try {
    log(`per-request cost, paired with the baseline, in ${options.paired.processes} processes...`)
    const runs: SubjectFigures[][] = []
    for (let i = 0; i < options.paired.processes; i++) {
      runs.push(await measureInProcess(options, sql, log))
      log(`process ${i + 1}/${options.paired.processes} done`)
    }
    paired = combineProcesses(runs)
    if (options.roundTripRepeat > 0) {
      log('store round trips...')
      const upstash = await startLocalUpstash()
      const stores = sql ? await openSqlStores(sql, 'bench_round_trips') : undefined
      try {
        roundTrips = await countRoundTrips(upstash, options.roundTripRepeat, stores)
      } finally {
        await Promise.all([upstash.stop(), stores?.close()])
      }
    }
  } finally {
    await sql?.stop()
  }
  let cookieCache: CookieCacheFigures | null = null
  if (options.cookieCache) {
    log(`cookie cache (Upstash + ${options.cookieCache.delayMs} ms per call)...`)
    const upstash = await startLocalUpstash()
    try {
      cookieCache = await measureCookieCache(upstash, options.cookieCache)
    } finally {
      await upstash.stop()
    }
  }
  let micro: MicroRow[] | null = null
  if (options.micro) {
    log('micro figures...')
    micro = await measureMicro(options.micro)
  }
  let http: HttpRow[] | null = null
  if (options.http) {
    log('HTTP throughput...')
    http = await measureHttp({ ...options.http, log })
  }
  const cpu = cpus()
  return {
    startedAt,
    seconds: (performance.now() - started) / 1000,
    machine: {
      cpu: cpu[0]?.model.trim() ?? 'unknown',
      cores: cpu.length,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
      loadStart,
      loadEnd: loadavg()[0] as number,
    },
    versions: versions(),
    options,
    paired,
    targets: [...checkTargets(paired), ...(cookieCache ? [cookieCacheTarget(cookieCache)] : [])],
    roundTrips,
    cookieCache,
    micro,
    http,
  }
}
