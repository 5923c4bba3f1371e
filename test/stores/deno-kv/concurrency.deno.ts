/**
 * @module The concurrency suite on the Deno KV store, under Deno: run by test/stores/deno-kv/concurrency.test.ts as
 * `deno test` with test/support/deno/deno.json, whose import map sends `vitest` to the Deno shim.
 */
import { type DenoKv, denoKvStore } from 'edge-session/stores/deno-kv'
import { describeConcurrency } from '../../shared/concurrency.ts'

const { Deno: deno } = globalThis as unknown as { Deno: { openKv(path: string): Promise<DenoKv> } }

// One in-memory database for the file; each store gets a prefix of its own, so every test starts empty.
const kv = await deno.openKv(':memory:')
let prefixes = 0

describeConcurrency({
  name: 'deno-kv',
  createStore: () => denoKvStore({ kv, prefix: ['concurrency', ++prefixes, 'sess'] }),
})
