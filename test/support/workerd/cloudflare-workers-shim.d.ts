/**
 * @module For the Node-side typecheck (root tsconfig) only: the workerd module the tests import. The workerd
 * typecheck (test/support/workerd/tsconfig.json) leaves this file out and takes the real one from workers-types.
 */
declare module 'cloudflare:workers' {
  export const env: unknown
}

/** The helpers of `@cloudflare/vitest-pool-workers` the Durable Objects tests use, for the same Node-side check. */
declare module 'cloudflare:test' {
  export function runInDurableObject<R>(
    stub: unknown,
    callback: (instance: unknown, state: { storage: unknown }) => R | Promise<R>,
  ): Promise<R>
  export function runDurableObjectAlarm(stub: unknown): Promise<boolean>
}
