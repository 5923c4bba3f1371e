/** @module The bindings the workerd test project declares (vitest.config.ts), typed for the tests. */
import { env } from 'cloudflare:workers'
import type { KvNamespace } from '../../../src/stores/cloudflare-kv.ts'

export interface TestBindings {
  /** A Miniflare KV namespace: the real KV limits (60 s TTL minimum, 512-byte keys) are enforced. */
  SESSIONS: KvNamespace
}

export const bindings = env as unknown as TestBindings
export const kv = bindings.SESSIONS
