/**
 * @module The Node example with DATABASE_URL=mysql://...: sessions kept in a throwaway MariaDB through mysqlStore,
 * so a visit count carries on from one example process to the next.
 */
import { createConnection } from 'mysql2/promise'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { expectSessionAcrossProcesses } from '../../support/examples/client.ts'
import { type RunningExample, startExample } from '../../support/examples.ts'
import { type MariaDbServer, startMariaDb } from '../../support/mariadb.ts'

const SECRET = 'mysql-example-test-secret-0123456789abcdefgh'

let server: MariaDbServer
const examples: RunningExample[] = []

beforeAll(async () => {
  server = await startMariaDb()
})

afterAll(async () => {
  await Promise.all(examples.map((example) => example.stop()))
  await server?.stop()
})

async function start(): Promise<RunningExample> {
  const example = await startExample('node', { SESSION_SECRET: SECRET, DATABASE_URL: server.url })
  examples.push(example)
  return example
}

/** The live session rows, as the table holds them. */
async function rows(): Promise<number> {
  const connection = await createConnection(server.url)
  try {
    const [found] = await connection.query('SELECT COUNT(*) AS n FROM sessions')
    return Number((found as Array<{ n: number }>)[0]?.n)
  } finally {
    await connection.end()
  }
}

describe('the Node example with DATABASE_URL=mysql://', () => {
  it('creates its table and keeps sessions in it: visits continue in a second example process', async () => {
    await expectSessionAcrossProcesses(start, 'MySQL', rows)
  }, 120_000)
})
