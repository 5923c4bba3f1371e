/**
 * @module postgresStore() under load and faults: the concurrency suite (100 writers on one session), and the server
 * stopped in the middle of traffic: ERR_STORE while it is down, then every committed session intact once it is back.
 */
import { createSessions, isSessionError } from 'edge-session'
import { postgresStore } from 'edge-session/stores/postgres'
import postgres from 'postgres'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { describeConcurrency } from '../../shared/concurrency.ts'
import { CookieJar } from '../../support/jar.ts'
import { type PostgresServer, startPostgres } from '../../support/postgres.ts'

let server: PostgresServer
let sql: postgres.Sql
let tables = 0

beforeAll(async () => {
  server = await startPostgres()
  // Fail fast while the server is down: a connection attempt gives up after a second.
  sql = postgres(server.url, { max: 10, connect_timeout: 1, onnotice: () => {} })
})

afterAll(async () => {
  await sql?.end({ timeout: 5 })
  await server?.stop()
})

describeConcurrency({
  name: 'postgres',
  createStore: async () => {
    const store = postgresStore({ sql, table: `concurrency_${++tables}` })
    await store.migrate()
    return store
  },
})

describe('postgresStore, server stopped mid-run', () => {
  it('answers ERR_STORE while the server is down, and keeps every committed session', async () => {
    const store = postgresStore({ sql, table: 'faults' })
    await store.migrate()
    const sessions = createSessions<Record<string, unknown>>({
      store,
      secrets: 'faults-secret-0123456789abcdefghijklmnop',
      storeTimeout: 3000,
    })
    interface Visitor {
      jar: CookieJar
      committed: number
      attempted: number
      user?: string
    }
    const visitors: Visitor[] = Array.from({ length: 12 }, () => ({
      jar: new CookieJar(),
      committed: -1,
      attempted: -1,
    }))
    const errors: unknown[] = []
    let running = true
    /** One visitor's requests in a loop: each sets `n` to the next number (some log in, a regenerate). */
    const traffic = async (visitor: Visitor, i: number) => {
      for (let n = 0; running; n++) {
        visitor.attempted = n
        try {
          const session = await sessions.load(visitor.jar.request())
          session.set('n', n)
          if (n === 3 && i % 2 === 0) session.setUser(`user-${i}`)
          visitor.jar.update(await sessions.commit(session, new Response()))
          visitor.committed = n
          if (n === 3 && i % 2 === 0) visitor.user = `user-${i}`
        } catch (error) {
          errors.push(error)
          return
        }
      }
    }
    const runs = visitors.map(traffic)
    // Let every visitor commit a few times, then stop the server under them.
    while (visitors.some((v) => v.committed < 5)) await new Promise((resolve) => setTimeout(resolve, 10))
    await server.crash()
    const down = await Promise.all(runs)
    running = false
    expect(down).toHaveLength(visitors.length)
    expect(errors).toHaveLength(visitors.length)
    for (const error of errors) expect(isSessionError(error, 'ERR_STORE'), String(error)).toBe(true)
    // A request while it is down: ERR_STORE too, not a fresh session.
    await expect(sessions.load(visitors[0]?.jar.request() as Request)).rejects.toMatchObject({
      code: 'ERR_STORE',
    })

    await server.start()
    for (const visitor of visitors) {
      const session = await sessions.load(visitor.jar.request())
      expect(session.isNew).toBe(false)
      // The last commit that answered, or the one under way when the server stopped, if it landed: never a
      // half-written session.
      expect([visitor.committed, visitor.attempted]).toContain(session.get('n'))
      if (visitor.user) expect(session.userId).toBe(visitor.user)
    }
    for (const visitor of visitors.filter((v) => v.user)) {
      expect(await sessions.listUserSessions(visitor.user as string)).toHaveLength(1)
    }
  }, 60_000)
})
