/**
 * @module For the Node-side typecheck (root tsconfig) only: the workerd module the tests import. The workerd
 * typecheck (test/support/workerd/tsconfig.json) leaves this file out and takes the real one from workers-types.
 */
declare module 'cloudflare:workers' {
  export const env: unknown
}
