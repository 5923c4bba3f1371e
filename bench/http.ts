/**
 * @module HTTP throughput of the Node example (examples/node/server.ts, memory and sealed-cookie stores) against
 * a bare Hono app on @hono/node-server, each in a process of its own on a free port of 127.0.0.1, loaded by
 * autocannon for a bounded time, in paired rounds. Every process started here is stopped here, by its pid.
 */

import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { freePort } from '../test/support/redis-server.ts'
import { median } from './stats.ts'
import { SECRET } from './subjects.ts'

export interface HttpOptions {
  /** Paired rounds: in each, every server is loaded once, in an order that alternates. */
  rounds: number
  /** Seconds each load lasts. */
  seconds: number
  connections: number
  log?: (line: string) => void
}

export interface HttpRow {
  id: string
  label: string
  /** Median requests per second. */
  rps: number
  /** Median of the per-round ratios to the bare app's requests per second (1 for the bare app). */
  ratio: number
  /** Median latency percentiles, ms. */
  p50: number
  p99: number
  /** Requests answered with anything but 2xx, or that failed, over all rounds (should be 0). */
  failures: number
  /**
   * Median CPU time the server process spent per request (user + system, from /proc), in µs: the server's own
   * cost, which the throughput hides when the load generator, on the same cores, is the bottleneck. Null where
   * /proc is not readable.
   */
  cpuUs: number | null
  /** Median of the per-round ratios of `cpuUs` to the bare app's. */
  cpuRatio: number | null
}

const root = fileURLToPath(new URL('../', import.meta.url))

interface Server {
  readonly url: string
  /** CPU time the process has used so far, in µs, or null where /proc is not readable. */
  cpuTime(): number | null
  stop(): Promise<void>
}

/** Clock ticks per second of /proc's utime and stime: USER_HZ, 100 on Linux. */
const USER_HZ = 100

function processCpuTime(pid: number | undefined): number | null {
  if (pid === undefined) return null
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may hold spaces, inside parentheses): utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ticks = Number(fields[11]) + Number(fields[12])
    return Number.isFinite(ticks) ? (ticks / USER_HZ) * 1e6 : null
  } catch {
    return null
  }
}

const running = new Set<ChildProcess>()
// A bench that dies must not leave servers behind: only the children started here, by their own pid.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/** Starts `file` with tsx on a free port of 127.0.0.1 and resolves once it answers `GET /api/session`. */
async function startServer(file: string, env: Record<string, string>): Promise<Server> {
  const port = await freePort()
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    cwd: root,
    env: { ...process.env, ...env, HOST: '127.0.0.1', PORT: String(port), NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.add(child)
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      running.delete(child)
      resolve()
    })
  })
  const url = `http://127.0.0.1:${port}`
  const server: Server = {
    url,
    cpuTime: () => processCpuTime(child.pid),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    },
  }
  const deadline = Date.now() + 60_000
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${file} exited at start:\n${output}`)
    }
    try {
      const response = await fetch(`${url}/api/session`, { signal: AbortSignal.timeout(2000) })
      await response.arrayBuffer()
      if (response.ok) return server
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await server.stop()
      throw new Error(`${file} did not answer on ${url}:\n${output}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** The session cookie the example sets on a first visit, as a Cookie header. */
async function sessionCookie(url: string): Promise<string> {
  const response = await fetch(`${url}/api/session`)
  await response.arrayBuffer()
  const cookie = response.headers
    .getSetCookie()
    .map((line) => line.slice(0, line.indexOf(';')))
    .join('; ')
  if (!cookie) throw new Error(`${url} set no session cookie`)
  return cookie
}

interface Sample {
  rps: number[]
  p50: number[]
  p99: number[]
  cpu: number[]
  failures: number
}

interface Target {
  id: string
  label: string
  file: string
  env: Record<string, string>
  /** Sends a session cookie: the example counts a visit (a session write) on every request. */
  withCookie: boolean
}

const TARGETS: readonly Target[] = [
  {
    id: 'bare',
    label: 'bare Hono app (no session)',
    file: 'bench/bare-server.ts',
    env: {},
    withCookie: false,
  },
  {
    id: 'bare-memory',
    label: 'the same app + edge-session, memory',
    file: 'bench/bare-server.ts',
    env: { SESSION_SECRET: SECRET, SESSION_STORE: 'memory' },
    withCookie: true,
  },
  {
    id: 'bare-cookie',
    label: 'the same app + edge-session, sealed cookie',
    file: 'bench/bare-server.ts',
    env: { SESSION_SECRET: SECRET, SESSION_STORE: 'cookie' },
    withCookie: true,
  },
  {
    id: 'example-memory',
    label: 'Node example, memory store',
    file: 'examples/node/server.ts',
    env: { SESSION_SECRET: SECRET },
    withCookie: true,
  },
  {
    id: 'example-cookie',
    label: 'Node example, sealed cookie store',
    file: 'examples/node/server.ts',
    env: { SESSION_SECRET: SECRET, SESSION_STORE: 'cookie' },
    withCookie: true,
  },
]

/**
 * Loads `GET /api/session` on each server with autocannon (`connections` connections, `seconds` each), round after
 * round. The example's requests carry a session cookie, so each one reads the session and counts a visit.
 */
export async function measureHttp(options: HttpOptions): Promise<HttpRow[]> {
  const log = options.log ?? (() => {})
  const servers = new Map<Target, Server>()
  try {
    for (const target of TARGETS) servers.set(target, await startServer(target.file, target.env))
    const headers = new Map<Target, Record<string, string>>()
    for (const [target, server] of servers) {
      headers.set(target, target.withCookie ? { cookie: await sessionCookie(server.url) } : {})
    }
    const samples = new Map<Target, Sample>()
    for (const target of TARGETS) samples.set(target, { rps: [], p50: [], p99: [], cpu: [], failures: 0 })
    // A short warm-up per server, so the JIT has settled before the first round.
    for (const [target, server] of servers) {
      await autocannon({
        url: `${server.url}/api/session`,
        connections: options.connections,
        duration: Math.min(1, options.seconds),
        headers: headers.get(target) ?? {},
      })
    }
    for (let round = 0; round < options.rounds; round++) {
      const order = round % 2 === 0 ? TARGETS : [...TARGETS].reverse()
      for (const target of order) {
        const server = servers.get(target) as Server
        const cpuBefore = server.cpuTime()
        const result = await autocannon({
          url: `${server.url}/api/session`,
          connections: options.connections,
          duration: options.seconds,
          headers: headers.get(target) ?? {},
        })
        const cpuAfter = server.cpuTime()
        const sample = samples.get(target) as Sample
        if (cpuBefore !== null && cpuAfter !== null && result.requests.total > 0) {
          sample.cpu.push((cpuAfter - cpuBefore) / result.requests.total)
        }
        sample.rps.push(result.requests.average)
        sample.p50.push(result.latency.p50)
        sample.p99.push(result.latency.p99)
        sample.failures += result.errors + result.timeouts + result.non2xx
      }
      log(`http round ${round + 1}/${options.rounds} done`)
    }
    const bare = samples.get(TARGETS[0] as Target) as Sample
    const cpuComplete = [...samples.values()].every((sample) => sample.cpu.length === options.rounds)
    return TARGETS.map((target) => {
      const sample = samples.get(target) as Sample
      return {
        id: target.id,
        label: target.label,
        rps: median(sample.rps),
        ratio: median(sample.rps.map((rps, i) => rps / (bare.rps[i] as number))),
        p50: median(sample.p50),
        p99: median(sample.p99),
        failures: sample.failures,
        cpuUs: cpuComplete ? median(sample.cpu) : null,
        cpuRatio: cpuComplete ? median(sample.cpu.map((cpu, i) => cpu / (bare.cpu[i] as number))) : null,
      }
    })
  } finally {
    await Promise.all([...servers.values()].map((server) => server.stop()))
  }
}
