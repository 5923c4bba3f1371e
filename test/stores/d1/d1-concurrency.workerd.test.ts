/** @module The concurrency suite on the D1 store inside workerd: 100 writers on one session, nothing lost. */
import { d1Store } from '../../../src/stores/d1.ts'
import { describeConcurrency } from '../../shared/concurrency.ts'
import { db, freshTable } from './d1-bindings.ts'

describeConcurrency({
  name: 'd1',
  createStore: async () => {
    const store = d1Store({ database: db, table: freshTable() })
    await store.migrate()
    return store
  },
})
