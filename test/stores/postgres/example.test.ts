/**
 * @module The Node example with DATABASE_URL=postgres://...: sessions kept in a throwaway PostgreSQL through
 * postgresStore, so a visit count and a login carry on from one example process to the next.
 */
import postgres from 'postgres'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client } from '../../support/examples/client.ts'
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
    const client = new Client()
    const first = await start()
    expect(await client.page(first)).toContain('with the PostgreSQL store.')
    expect(await client.session(first)).toEqual({ visits: 2, user: null })
    expect(await rows()).toBe(1)
    await client.login(first, 'ada')
    await first.stop()

    const second = await start()
    expect(await client.session(second)).toEqual({ visits: 3, user: 'ada' })
    // One row: the one of the id before login was deleted when login regenerated it.
    expect(await rows()).toBe(1)
    await client.logout(second)
    expect(await rows()).toBe(0)
  }, 120_000)
})
