/**
 * @module The cookie cache, measured: the latency of read-only requests on Upstash (the local endpoint, with a
 * delay added to every store call, as a distant region's round trip) with and without the cache, and the time per
 * request of a read the cache answers against the memory store's read and the no-session baseline, in paired
 * rounds as `bench/paired.ts` measures the subjects.
 */

import type { ServerStore } from 'edge-session'
import { memoryStore } from 'edge-session/stores/memory'
import { upstashStore } from 'edge-session/stores/upstash'
import type { LocalUpstash } from '../test/support/local-upstash.ts'
import { type Client, loggedInClient, timeBatch } from './requests.ts'
import { median } from './stats.ts'
import { baselineApp, edgeSessionApp, type Subject } from './subjects.ts'

export interface CookieCacheOptions {
  /** Milliseconds added to every store call. */
  delayMs: number
  /** Read-only requests timed one by one for the latency medians, per app. */
  latencyRequests: number
  /** Paired rounds of the CPU comparison. */
  rounds: number
  /** Requests per batch in a round. */
  batch: number
}

export interface CookieCacheFigures {
  delayMs: number
  /** Median ms of a read-only request on Upstash (+ delay), without and with a warm cache. */
  latency: { withoutMs: number; withMs: number; requests: number }
  /** Median µs per read-only request, and medians of per-round ratios. */
  cpu: {
    baselineUs: number
    memoryUs: number
    cachedUs: number
    /** memory read / baseline. */
    memoryRatio: number
    /** cached read / baseline. */
    cachedRatio: number
    /** cached read / memory read: the target is at most 2. */
    cachedToMemory: number
    rounds: number
  }
}

/** The store's every call answered `delayMs` later: a region's round trip on top of the loopback one. */
function delayed(store: ServerStore, delayMs: number): ServerStore {
  const wait = () => new Promise((resolve) => setTimeout(resolve, delayMs))
  const wrapped: ServerStore = { ...store, name: store.name } as ServerStore
  for (const method of ['get', 'set', 'patch', 'touch', 'delete'] as const) {
    const original = store[method] as ((...args: unknown[]) => unknown) | undefined
    if (!original) continue
    Object.assign(wrapped, {
      [method]: async (...args: unknown[]) => {
        await wait()
        return original.apply(store, args)
      },
    })
  }
  return wrapped
}

function subject(id: string, label: string, fetch: Subject['fetch']): Subject {
  return { id, library: id === 'baseline' ? 'none' : 'edge-session', store: 'upstash', label, fetch }
}

/** Median ms of `n` read-only requests of `client`, each timed on its own. */
async function readLatency(client: Client, n: number): Promise<number> {
  const times: number[] = []
  for (let i = 0; i < n; i++) times.push(await timeBatch(client, 'read', 1))
  return median(times)
}

export async function measureCookieCache(
  upstash: LocalUpstash,
  options: CookieCacheOptions,
): Promise<CookieCacheFigures> {
  const store = (prefix: string) =>
    delayed(upstashStore({ redis: upstash.client(), prefix }), options.delayMs)
  // maxAge at its most (300 s): a run shorter than that reads the cache warm throughout.
  const cache = { maxAge: 300 }
  const withoutCache = subject('upstash', 'Upstash + delay', edgeSessionApp(store('bench-cache-off:')).fetch)
  const withCache = subject(
    'upstash-cache',
    'Upstash + delay, cookieCache',
    edgeSessionApp(store('bench-cache-on:'), undefined, cache).fetch,
  )
  const [without, cached] = [await loggedInClient(withoutCache), await loggedInClient(withCache)]
  const latency = {
    withoutMs: await readLatency(without, options.latencyRequests),
    withMs: await readLatency(cached, options.latencyRequests),
    requests: options.latencyRequests,
  }

  // CPU: the baseline, the memory store's read and the cached read, in paired rounds (order rotating).
  const baseline = await loggedInClient(subject('baseline', 'no session', baselineApp().fetch))
  const memory = await loggedInClient(subject('memory', 'memory', edgeSessionApp(memoryStore()).fetch))
  const clients = [baseline, memory, cached]
  for (const client of clients) await timeBatch(client, 'read', options.batch)
  const times: number[][] = [[], [], []]
  const ratios = { memory: [] as number[], cached: [] as number[], cachedToMemory: [] as number[] }
  for (let round = 0; round < options.rounds; round++) {
    const us: number[] = [0, 0, 0]
    for (let k = 0; k < clients.length; k++) {
      const index = (round + k) % clients.length
      us[index] = (await timeBatch(clients[index] as Client, 'read', options.batch)) * 1000
    }
    const [b, m, c] = us as [number, number, number]
    times[0]?.push(b)
    times[1]?.push(m)
    times[2]?.push(c)
    ratios.memory.push(m / b)
    ratios.cached.push(c / b)
    ratios.cachedToMemory.push(c / m)
  }
  return {
    delayMs: options.delayMs,
    latency,
    cpu: {
      baselineUs: median(times[0] ?? []),
      memoryUs: median(times[1] ?? []),
      cachedUs: median(times[2] ?? []),
      memoryRatio: median(ratios.memory),
      cachedRatio: median(ratios.cached),
      cachedToMemory: median(ratios.cachedToMemory),
      rounds: options.rounds,
    },
  }
}
