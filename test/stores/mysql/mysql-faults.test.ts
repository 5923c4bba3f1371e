/**
 * @module mysqlStore() when MariaDB goes away mid-run (killed, as a crash would) and comes back: ERR_STORE while
 * it is down, then every committed session intact and writable again through the same pool.
 */
import { createSessions } from 'edge-session'
import { mysqlStore } from 'edge-session/stores/mysql'
import { createPool, type Pool } from 'mysql2/promise'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CookieJar } from '../../support/jar.ts'
import { type MariaDbServer, startMariaDb } from '../../support/mariadb.ts'

let server: MariaDbServer
let pool: Pool

beforeAll(async () => {
  server = await startMariaDb()
  pool = createPool({ uri: server.url, connectionLimit: 4, connectTimeout: 2_000 })
})

afterAll(async () => {
  await pool?.end()
  await server?.stop()
})

describe('mysqlStore: the server stopped mid-run', () => {
  it('answers ERR_STORE while it is down, writes nothing half, and finds every committed session after a restart', async () => {
    const store = mysqlStore({ pool, table: 'faults' })
    await store.migrate()
    const sessions = createSessions<Record<string, unknown>>({
      store,
      secrets: ['faults-secret-0123456789abcdefghijklmnopqrs'],
      storeTimeout: 5_000,
    })
    const jars = Array.from({ length: 20 }, () => new CookieJar())
    await Promise.all(
      jars.map(async (jar, i) => {
        const s = await sessions.load(jar.request())
        s.set('n', i)
        s.set('list', [i, { deep: `v${i}` }])
        s.setUser(`user-${i % 5}`)
        jar.update(await sessions.commit(s, new Response()))
      }),
    )

    await server.kill()
    for (const jar of jars.slice(0, 5)) {
      const failure = await (async () => {
        const s = await sessions.load(jar.request())
        s.set('n', 'lost')
        await sessions.commit(s, new Response())
      })().catch((error: unknown) => error)
      expect(failure).toMatchObject({ name: 'SessionError', code: 'ERR_STORE' })
    }
    await expect(sessions.countUsers()).rejects.toMatchObject({ code: 'ERR_STORE' })

    await server.restart()
    for (const [i, jar] of jars.entries()) {
      const s = await sessions.load(jar.request())
      expect(s.isNew).toBe(false)
      expect(s.get('n')).toBe(i)
      expect(s.get('list')).toEqual([i, { deep: `v${i}` }])
      expect(s.userId).toBe(`user-${i % 5}`)
    }
    expect(await sessions.countUsers()).toBe(5)
    expect(await sessions.count()).toBe(20)
    const first = jars[0] as CookieJar
    const s = await sessions.load(first.request())
    s.set('after', true)
    first.update(await sessions.commit(s, new Response()))
    expect((await sessions.load(first.request())).get('after')).toBe(true)
  })
})
