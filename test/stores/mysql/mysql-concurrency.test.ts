/** @module The concurrency suite on mysqlStore(), against a real MariaDB: 100 writers on one session, nothing lost. */
import { mysqlStore } from 'edge-session/stores/mysql'
import { createPool, type Pool } from 'mysql2/promise'
import { afterAll, beforeAll } from 'vitest'
import { describeConcurrency } from '../../shared/concurrency.ts'
import { type MariaDbServer, startMariaDb } from '../../support/mariadb.ts'

let server: MariaDbServer
let pool: Pool

beforeAll(async () => {
  server = await startMariaDb()
  pool = createPool({ uri: server.url, connectionLimit: 10 })
})

afterAll(async () => {
  await pool?.end()
  await server?.stop()
})

let tables = 0
describeConcurrency({
  name: 'mysql (MariaDB 10.11)',
  createStore: async () => {
    const store = mysqlStore({ pool, table: `concurrency_${++tables}` })
    await store.migrate()
    return store
  },
})
