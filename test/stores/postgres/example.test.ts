/**
 * @module The Node example with DATABASE_URL=postgres://...: sessions kept in a throwaway PostgreSQL through
 * postgresStore, so a visit count and a login carry on from one example process to the next.
 */
import postgres from 'postgres'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { expectSessionAcrossProcesses } from '../../support/examples/client.ts'
import { type RunningExample, startExample } from '../../support/examples.ts'
import { type PostgresServer, startPostgres } from '../../support/postgres.ts'

const SECRET = 'postgres-example-test-secret-0123456789abcdef'

let server: PostgresServer
let sql: postgres.Sql
const examples: RunningExample[] = []

beforeAll(async () => {
  server = await startPostgres()
  sql = postgres(server.url, { max: 1, onnotice: () => {} })
})

afterAll(async () => {
  await Promise.all(examples.map((example) => example.stop()))
  await sql?.end({ timeout: 5 })
  await server?.stop()
})

async function start(): Promise<RunningExample> {
  const example = await startExample('node', { SESSION_SECRET: SECRET, DATABASE_URL: server.url })
  examples.push(example)
  return example
}

const rows = async () => (await sql.unsafe('select count(*)::int as n from sessions'))[0]?.n

describe('the Node example with DATABASE_URL=postgres://', () => {
  it('keeps sessions in PostgreSQL: visits and the login continue in a second example process', async () => {
    await expectSessionAcrossProcesses(start, 'PostgreSQL', rows)
  }, 120_000)
})
