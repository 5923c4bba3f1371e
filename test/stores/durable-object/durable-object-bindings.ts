/**
 * @module The bindings the workerd test project declares for the Durable Objects store (vitest.config.ts):
 * `SESSION_OBJECTS`, bound to `SessionObject` from the main Worker, and `SECOND`, another Worker bound to it too.
 */
import { env } from 'cloudflare:workers'
import { durableObjectStore, type SessionObjectNamespace } from '../../../src/stores/durable-object.ts'
import type { ConformanceOptions } from '../../shared/conformance.ts'

export interface DurableObjectBindings {
  SESSION_OBJECTS: SessionObjectNamespace
  /** test/support/workerd/second-worker.ts */
  SECOND: { fetch(request: Request): Promise<Response> }
}

export const doEnv = env as unknown as DurableObjectBindings

let prefixes = 0
/** An object-name prefix no other test uses: user indexes are named by user id, which tests share. */
export const freshPrefix = (): string => `p${++prefixes}-${crypto.randomUUID()}:`

/** The conformance options of this store, for the suite's runs split over two files (see the files). */
export function conformanceOptions(runs: ConformanceOptions['runs']): ConformanceOptions {
  return {
    name: 'durable-object',
    kind: 'server',
    createStore: () =>
      durableObjectStore({
        namespace: (bindings: DurableObjectBindings) => bindings.SESSION_OBJECTS,
        prefix: freshPrefix(),
      }),
    env: () => doEnv,
    userSessions: true,
    runs,
  }
}
