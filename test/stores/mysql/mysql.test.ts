/** @module mysqlStore() through mysql2/promise against a real MariaDB started by the test: the conformance suite. */
import { mysqlStore } from 'edge-session/stores/mysql'
import { createPool, type Pool } from 'mysql2/promise'
import { afterAll, beforeAll } from 'vitest'
import { describeStoreConformance } from '../../shared/conformance.ts'
import { type MariaDbServer, startMariaDb } from '../../support/mariadb.ts'

let server: MariaDbServer
let pool: Pool

beforeAll(async () => {
  server = await startMariaDb()
  pool = createPool({ uri: server.url, connectionLimit: 8 })
})

afterAll(async () => {
  await pool?.end()
  await server?.stop()
})

let tables = 0

describeStoreConformance({
  name: 'mysql (MariaDB 10.11)',
  kind: 'server',
  // A fresh table per test: every test starts from an empty store.
  createStore: async () => {
    const store = mysqlStore({ pool, table: `conformance_${++tables}` })
    await store.migrate()
    return store
  },
  realTimeExpiry: true,
})
