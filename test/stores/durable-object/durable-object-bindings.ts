/**
 * @module The bindings the workerd test project declares for the Durable Objects store (vitest.config.ts):
 * `SESSION_OBJECTS`, bound to `SessionObject` from the main Worker, and `SECOND`, another Worker bound to it too.
 */
import { env } from 'cloudflare:workers'
import type { SessionObjectNamespace } from '../../../src/stores/durable-object.ts'

export interface DurableObjectBindings {
  SESSION_OBJECTS: SessionObjectNamespace
  /** test/support/workerd/second-worker.ts */
  SECOND: { fetch(request: Request): Promise<Response> }
}

export const doEnv = env as unknown as DurableObjectBindings

let prefixes = 0
/** An object-name prefix no other test uses: user indexes are named by user id, which tests share. */
export const freshPrefix = (): string => `p${++prefixes}-${crypto.randomUUID()}:`
