/**
 * @module HTTP throughput of the Node example (examples/node/server.ts, memory and sealed-cookie stores) against
 * a bare Hono app on @hono/node-server, each in a process of its own on a free port of 127.0.0.1, loaded by
 * autocannon for a bounded time, in paired rounds. Every process started here is stopped here, by its pid.
 */

import { type ChildProcess, spawn } from 'node:child_process'
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
}

const root = fileURLToPath(new URL('../', import.meta.url))

interface Server {
  readonly url: string
  stop(): Promise<void>
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
    const samples = new Map<Target, { rps: number[]; p50: number[]; p99: number[]; failures: number }>()
    for (const target of TARGETS) samples.set(target, { rps: [], p50: [], p99: [], failures: 0 })
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
        const result = await autocannon({
          url: `${server.url}/api/session`,
          connections: options.connections,
          duration: options.seconds,
          headers: headers.get(target) ?? {},
        })
        const sample = samples.get(target) as {
          rps: number[]
          p50: number[]
          p99: number[]
          failures: number
        }
        sample.rps.push(result.requests.average)
        sample.p50.push(result.latency.p50)
        sample.p99.push(result.latency.p99)
        sample.failures += result.errors + result.timeouts + result.non2xx
      }
      log(`http round ${round + 1}/${options.rounds} done`)
    }
    const bare = samples.get(TARGETS[0] as Target) as { rps: number[] }
    return TARGETS.map((target) => {
      const sample = samples.get(target) as { rps: number[]; p50: number[]; p99: number[]; failures: number }
      return {
        id: target.id,
        label: target.label,
        rps: median(sample.rps),
        ratio: median(sample.rps.map((rps, i) => rps / (bare.rps[i] as number))),
        p50: median(sample.p50),
        p99: median(sample.p99),
        failures: sample.failures,
      }
    })
  } finally {
    await Promise.all([...servers.values()].map((server) => server.stop()))
  }
}
