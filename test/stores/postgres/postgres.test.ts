/** @module postgresStore() against a real PostgreSQL started for this file: the conformance suite, per-user part included. */
import { postgresStore } from 'edge-session/stores/postgres'
import postgres from 'postgres'
import { afterAll, beforeAll } from 'vitest'
import { describeStoreConformance } from '../../shared/conformance.ts'
import { type PostgresServer, startPostgres } from '../../support/postgres.ts'

let server: PostgresServer
let sql: postgres.Sql
let tables = 0

beforeAll(async () => {
  server = await startPostgres()
  sql = postgres(server.url, { max: 10, onnotice: () => {} })
})

afterAll(async () => {
  await sql?.end({ timeout: 5 })
  await server?.stop()
})

describeStoreConformance({
  name: 'postgres',
  kind: 'server',
  // A fresh table per test: its own empty key space.
  createStore: async () => {
    const store = postgresStore({ sql, table: `conformance_${++tables}` })
    await store.migrate()
    return store
  },
})
