/**
 * @module Load harness: runs the Node example as its own process on a loopback port, drives it with many virtual
 * clients (each with its own cookie jar, requests in sequence), checks every answer, and samples the server's
 * resident memory from outside (/proc/<pid>/status). Bounded in time and in requests.
 */
import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { type ExampleProcess, startExample } from '../support/examples.ts'
import { waitFor } from '../support/processes.ts'

/**
 * The Node example with `env` added (a session secret of the load test's unless given) and `nodeArgs` given to
 * Node, once it has printed its start line, which names the store.
 */
export async function startNodeExample(
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
): Promise<ExampleProcess> {
  const server = await startExample(
    'node',
    { SESSION_SECRET: 'load-test-secret-0123456789abcdefghijklmnop', ...env },
    { nodeArgs },
  )
  try {
    await waitFor(() => server.output().includes('listening on'), {
      what: 'the Node example to print its start line',
      timeoutMs: 5_000,
    })
  } catch (error) {
    await server.stop()
    throw error
  }
  return server
}

/** The resident set size of a process, in MiB, as the kernel reports it. */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(status.match(/^VmRSS:\s+(\d+) kB/m)?.[1])
  if (!Number.isFinite(kb)) throw new Error(`no VmRSS for pid ${pid}`)
  return kb / 1024
}

interface Answer {
  status: number
  body: string
  setCookies: string[]
}

function get(agent: Agent, url: string, cookie: string | undefined): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { accept: 'application/json' }
    if (cookie) headers.cookie = cookie
    const req = request(url, { agent, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => {
        const setCookie = res.headers['set-cookie'] ?? []
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString(),
          setCookies: setCookie,
        })
      })
      res.on('error', reject)
    })
    req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')))
    req.on('error', reject)
    req.end()
  })
}

export interface LoadOptions {
  url: string
  /** Virtual clients, each with its own cookie jar, each sending one request after another. */
  clients: number
  /** How long to run, in ms. */
  durationMs: number
  /** A bound on the requests sent, whatever the time. */
  maxRequests: number
  /** Clients that never keep a cookie: every request of theirs starts a new session (a flood). */
  flood?: boolean
  /** Server pid to sample RSS from, every `sampleMs`. */
  pid?: number
  sampleMs?: number
}

export interface LoadResult {
  requests: number
  errors: number
  /** Answers whose visit count was not the client's own count of its requests: a lost (or doubled) update. */
  lostUpdates: number
  /** Clients whose final visit count, read after the run, differed from the number of requests they sent. */
  clientsWithLostUpdates: number
  durationMs: number
  requestsPerSecond: number
  latencyMs: { p50: number; p99: number; max: number }
  /** [seconds since start, RSS MiB]. */
  rss: Array<[number, number]>
  firstErrors: string[]
}

/**
 * Drives `/api/session` (each GET counts one visit in the session). A client checks every answer: its n-th
 * request must report n visits, since it sends one at a time, so an update lost anywhere shows at once.
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.clients })
  const started = performance.now()
  const stopAt = started + options.durationMs
  const latencies: number[] = []
  const rss: Array<[number, number]> = []
  const firstErrors: string[] = []
  let requests = 0
  let errors = 0
  let lostUpdates = 0
  const fail = (message: string) => {
    errors++
    if (firstErrors.length < 5) firstErrors.push(message)
  }
  const sampler =
    options.pid === undefined
      ? undefined
      : setInterval(() => {
          rss.push([Math.round((performance.now() - started) / 100) / 10, rssMiB(options.pid as number)])
        }, options.sampleMs ?? 1000)
  if (options.pid !== undefined) rss.push([0, rssMiB(options.pid)])

  const endpoint = `${options.url}/api/session`
  const clients = Array.from({ length: options.clients }, () => ({
    cookie: undefined as string | undefined,
    sent: 0,
    // After a failed request the client cannot know whether that visit was counted: it resynchronizes on the
    // next answer (the failure itself is already counted as an error).
    uncertain: false,
  }))
  await Promise.all(
    clients.map(async (client) => {
      while (performance.now() < stopAt && requests < options.maxRequests) {
        requests++
        client.sent++
        const t0 = performance.now()
        let answer: Answer
        try {
          answer = await get(agent, endpoint, options.flood ? undefined : client.cookie)
        } catch (error) {
          fail(`request failed: ${(error as Error).message}`)
          client.uncertain = true
          continue
        }
        latencies.push(performance.now() - t0)
        if (answer.status !== 200) {
          fail(`status ${answer.status}: ${answer.body.slice(0, 100)}`)
          client.uncertain = true
          continue
        }
        const visits = (JSON.parse(answer.body) as { visits: number }).visits
        const expected = options.flood ? 1 : client.sent
        if (client.uncertain) {
          client.uncertain = false
          client.sent = visits
        } else if (visits !== expected) {
          lostUpdates++
          if (firstErrors.length < 5) firstErrors.push(`visit ${client.sent} of a client answered ${visits}`)
          client.sent = visits
        }
        const cookie = answer.setCookies.find((line) => line.startsWith('sid='))
        if (cookie) client.cookie = cookie.split(';')[0]
      }
    }),
  )
  const durationMs = performance.now() - started
  if (sampler) clearInterval(sampler)
  if (options.pid !== undefined) rss.push([Math.round(durationMs / 100) / 10, rssMiB(options.pid)])

  // Read back: each client's session must hold exactly the visits it made (this read adds one).
  let clientsWithLostUpdates = 0
  if (!options.flood) {
    for (const client of clients) {
      if (client.sent === 0) continue
      const answer = await get(agent, endpoint, client.cookie)
      const visits = answer.status === 200 ? (JSON.parse(answer.body) as { visits: number }).visits : -1
      if (visits !== client.sent + 1) clientsWithLostUpdates++
    }
  }
  agent.destroy()
  latencies.sort((a, b) => a - b)
  const at = (q: number) =>
    Math.round((latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0) * 10) / 10
  return {
    requests,
    errors,
    lostUpdates,
    clientsWithLostUpdates,
    durationMs: Math.round(durationMs),
    requestsPerSecond: Math.round((requests / durationMs) * 1000),
    latencyMs: { p50: at(0.5), p99: at(0.99), max: at(1) },
    rss,
    firstErrors,
  }
}

/**
 * Whether memory levels off: the highest RSS in the last third of the run is at most `tolerance` (a fraction)
 * above the highest in the middle third.
 */
export function levelsOff(rss: ReadonlyArray<readonly [number, number]>, tolerance: number): boolean {
  const end = rss.at(-1)?.[0] ?? 0
  const peak = (from: number, to: number) =>
    Math.max(...rss.filter(([t]) => t >= from && t <= to).map(([, mib]) => mib))
  return peak((2 * end) / 3, end) <= peak(end / 3, (2 * end) / 3) * (1 + tolerance)
}

/** One line per figure, for the log. */
export function describeResult(name: string, result: LoadResult): string {
  const samples = result.rss.map(([t, mib]) => `${t}s ${mib.toFixed(1)}`).join(', ')
  return [
    `${name}: ${result.requests} requests in ${(result.durationMs / 1000).toFixed(1)} s (${result.requestsPerSecond}/s)`,
    `  errors ${result.errors}, lost updates ${result.lostUpdates}, clients with a wrong final count ${result.clientsWithLostUpdates}`,
    `  latency p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms, max ${result.latencyMs.max} ms`,
    `  server RSS MiB: ${samples}`,
    ...result.firstErrors.map((error) => `  error: ${error}`),
  ].join('\n')
}

/** The Node example with its sessions in Upstash Redis, through the local REST endpoint `local`. */
export async function startUpstashExample(local: {
  endpoint: { url: string; token: string }
}): Promise<ExampleProcess> {
  const server = await startNodeExample({
    UPSTASH_REDIS_REST_URL: local.endpoint.url,
    UPSTASH_REDIS_REST_TOKEN: local.endpoint.token,
  })
  if (!/Upstash Redis store/.test(server.output())) {
    await server.stop()
    throw new Error(`the Node example did not start on the Upstash store: ${server.output().trim()}`)
  }
  return server
}
