/**
 * @module Time per request of every subject against the baseline, measured in paired rounds: in each round the
 * baseline and the subject run back to back, and the ratio of that pair is kept. The median of those per-round
 * ratios cancels the drift of a busy machine's speed, which medians of separate timings would not.
 */

import { type Client, loggedInClient, type RequestKind, timeBatch } from './requests.ts'
import { median } from './stats.ts'
import type { Library, StoreKind, Subject } from './subjects.ts'

export interface PairedOptions {
  /** Paired rounds (per subject and request kind). */
  rounds: number
  /** Target duration of one batch, in ms: the batch size of each subject is calibrated to it. */
  batchMs: number
  /** Requests per subject and kind before calibrating, so the JIT has settled. */
  warmup: number
  /** Bounds on a batch's size. */
  minBatch: number
  maxBatch: number
  /** Progress lines. */
  log?: (line: string) => void
}

export interface KindFigures {
  /** Median over rounds of the subject's mean time per request, in µs. */
  us: number
  /** Median over rounds of the paired baseline's mean time per request, in µs. */
  baselineUs: number
  /** Median of the per-round ratios subject / baseline. */
  ratio: number
  /** Every round's ratio, in order. */
  ratios: number[]
  /** Requests per batch. */
  batch: number
  /** Each process's median ratio, when the figures combine several processes (see {@link combineProcesses}). */
  processRatios?: number[]
}

export interface SubjectFigures {
  id: string
  label: string
  library: Library
  store: StoreKind
  read: KindFigures
  write: KindFigures
  /** Bytes of the Cookie header after logging in and counting (user and count in the session). */
  cookieBytes: number
}

const KINDS: readonly RequestKind[] = ['read', 'write']

/**
 * A batch size for `client` that takes about `options.batchMs`: after the warm-up, batches doubling in size until
 * one lasts half that, then three at that size; the fastest (least disturbed by the rest of the machine) sets it.
 */
async function calibrate(client: Client, kind: RequestKind, options: PairedOptions): Promise<number> {
  await timeBatch(client, kind, options.warmup)
  let n = Math.max(1, options.minBatch)
  let perRequest = await timeBatch(client, kind, n)
  while (perRequest * n < options.batchMs / 2 && n < options.maxBatch) {
    n = Math.min(options.maxBatch, n * 2)
    perRequest = await timeBatch(client, kind, n)
  }
  for (let attempt = 0; attempt < 3; attempt++)
    perRequest = Math.min(perRequest, await timeBatch(client, kind, n))
  const size = Math.round(options.batchMs / Math.max(perRequest, 1e-6))
  return Math.max(options.minBatch, Math.min(options.maxBatch, size))
}

/**
 * Measures every subject against the baseline (the subject with id `baseline`) in paired rounds. Each subject is
 * first checked to really keep a session (its counter counts); a broken one throws.
 */
export async function measurePaired(
  subjects: readonly Subject[],
  options: PairedOptions,
): Promise<SubjectFigures[]> {
  const log = options.log ?? (() => {})
  const baselineSubject = subjects.find((s) => s.id === 'baseline')
  if (!baselineSubject) throw new Error('no baseline subject')
  const baseline = await loggedInClient(baselineSubject)
  const others = subjects.filter((s) => s !== baselineSubject)
  const clients = new Map<Subject, Client>()
  const batches = new Map<string, number>()
  const cookieBytes = new Map<Subject, number>()
  for (const subject of others) {
    const client = await loggedInClient(subject)
    cookieBytes.set(subject, client.cookieBytes())
    clients.set(subject, client)
  }
  for (const kind of KINDS) {
    batches.set(`baseline:${kind}`, await calibrate(baseline, kind, options))
    for (const subject of others) {
      batches.set(`${subject.id}:${kind}`, await calibrate(clients.get(subject) as Client, kind, options))
    }
  }
  log(`calibrated batches: ${[...batches].map(([k, n]) => `${k}=${n}`).join(' ')}`)

  const times = new Map<string, { subject: number[]; baseline: number[]; ratios: number[] }>()
  for (const subject of others)
    for (const kind of KINDS) times.set(`${subject.id}:${kind}`, { subject: [], baseline: [], ratios: [] })

  for (let round = 0; round < options.rounds; round++) {
    for (const [index, subject] of others.entries()) {
      const client = clients.get(subject) as Client
      for (const kind of KINDS) {
        const nBaseline = batches.get(`baseline:${kind}`) as number
        const nSubject = batches.get(`${subject.id}:${kind}`) as number
        // Alternate which goes first, so neither always runs on a heap the other just filled.
        let b: number
        let s: number
        if ((round + index) % 2 === 0) {
          b = await timeBatch(baseline, kind, nBaseline)
          s = await timeBatch(client, kind, nSubject)
        } else {
          s = await timeBatch(client, kind, nSubject)
          b = await timeBatch(baseline, kind, nBaseline)
        }
        const entry = times.get(`${subject.id}:${kind}`) as {
          subject: number[]
          baseline: number[]
          ratios: number[]
        }
        entry.subject.push(s)
        entry.baseline.push(b)
        entry.ratios.push(s / b)
      }
    }
    log(`round ${round + 1}/${options.rounds} done`)
  }

  const figures = (id: string, kind: RequestKind): KindFigures => {
    const entry = times.get(`${id}:${kind}`) as { subject: number[]; baseline: number[]; ratios: number[] }
    return {
      us: median(entry.subject) * 1000,
      baselineUs: median(entry.baseline) * 1000,
      ratio: median(entry.ratios),
      ratios: entry.ratios,
      batch: batches.get(`${id}:${kind}`) as number,
    }
  }
  const baselineFigures = (kind: RequestKind): KindFigures => {
    const all = others.flatMap((s) => (times.get(`${s.id}:${kind}`) as { baseline: number[] }).baseline)
    const us = median(all) * 1000
    return { us, baselineUs: us, ratio: 1, ratios: [], batch: batches.get(`baseline:${kind}`) as number }
  }
  return [
    {
      id: baselineSubject.id,
      label: baselineSubject.label,
      library: baselineSubject.library,
      store: baselineSubject.store,
      read: baselineFigures('read'),
      write: baselineFigures('write'),
      cookieBytes: 0,
    },
    ...others.map((subject) => ({
      id: subject.id,
      label: subject.label,
      library: subject.library,
      store: subject.store,
      read: figures(subject.id, 'read'),
      write: figures(subject.id, 'write'),
      cookieBytes: cookieBytes.get(subject) as number,
    })),
  ]
}

/**
 * The figures of several processes, each measured alike, as one: per subject and kind, the median of the
 * processes' medians. A process's JIT settles on its own code layout for the whole run, which moves every ratio
 * it measures by several per cent; medians across processes cancel that as paired rounds cancel drift.
 */
export function combineProcesses(runs: readonly SubjectFigures[][]): SubjectFigures[] {
  const first = runs[0]
  if (!first) throw new Error('no process measured anything')
  const combine = (id: string, kind: RequestKind): KindFigures => {
    const all = runs.map((run) => {
      const row = run.find((r) => r.id === id)
      if (!row) throw new Error(`a process measured no ${id}`)
      return row[kind]
    })
    return {
      us: median(all.map((k) => k.us)),
      baselineUs: median(all.map((k) => k.baselineUs)),
      ratio: median(all.map((k) => k.ratio)),
      ratios: all.flatMap((k) => k.ratios),
      batch: median(all.map((k) => k.batch)),
      processRatios: all.map((k) => k.ratio),
    }
  }
  return first.map((row) => ({ ...row, read: combine(row.id, 'read'), write: combine(row.id, 'write') }))
}
