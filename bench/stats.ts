/** @module Small statistics for the benchmark: medians, and timing a function per operation. */

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

/**
 * Mean time per call of `run(i)` over `n` calls made one after another, in ms. A promise is awaited before the
 * next call, as a request awaits it; a plain result is not.
 */
export async function perCall(n: number, run: (i: number) => unknown): Promise<number> {
  const start = performance.now()
  for (let i = 0; i < n; i++) {
    const result = run(i)
    if (result instanceof Promise) await result
  }
  return (performance.now() - start) / n
}
