/** @module The D1 store against Miniflare's D1 inside workerd: the conformance suite, per-user part included. */
import { d1Store } from '../../../src/stores/d1.ts'
import { describeStoreConformance } from '../../shared/conformance.ts'
import { type D1Bindings, d1Env, freshTable } from './d1-bindings.ts'

describeStoreConformance({
  name: 'd1',
  kind: 'server',
  createStore: async () => {
    const store = d1Store({ database: (env: D1Bindings) => env.DB, table: freshTable() })
    await store.migrate(d1Env)
    return store
  },
  env: () => d1Env,
})
