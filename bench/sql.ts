/**
 * @module The SQL stores of the benchmark: a throwaway MariaDB and PostgreSQL (the test support modules), and D1
 * through Miniflare, each driver wrapped to count the round trips the store makes to its database.
 */

import { type D1Binding, type D1Statement, d1Store } from 'edge-session/stores/d1'
import { mysqlStore } from 'edge-session/stores/mysql'
import { postgresStore } from 'edge-session/stores/postgres'
import { Miniflare } from 'miniflare'
import { createPool } from 'mysql2/promise'
import postgres from 'postgres'
import { startMariaDb } from '../test/support/mariadb.ts'
import { startPostgres } from '../test/support/postgres.ts'

/** Where the SQL servers listen: started once by the harness, shared by every process that measures. */
export interface SqlServers {
  mysqlUrl: string
  postgresUrl: string
}

export interface RunningSqlServers extends SqlServers {
  stop(): Promise<void>
}

/** Starts MariaDB and PostgreSQL on free loopback ports, in temporary directories. */
export async function startSqlServers(): Promise<RunningSqlServers> {
  const [mariadb, pg] = await Promise.allSettled([startMariaDb(), startPostgres()])
  if (mariadb.status === 'rejected' || pg.status === 'rejected') {
    if (mariadb.status === 'fulfilled') await mariadb.value.stop()
    if (pg.status === 'fulfilled') await pg.value.stop()
    throw mariadb.status === 'rejected' ? mariadb.reason : (pg as PromiseRejectedResult).reason
  }
  return {
    mysqlUrl: mariadb.value.url,
    postgresUrl: pg.value.url,
    stop: async () => {
      await Promise.all([mariadb.value.stop(), pg.value.stop()])
    },
  }
}

/** A store and the round trips it has made to its database since the last reset. */
export interface CountedStore<S> {
  store: S
  /** Statements sent (MySQL, PostgreSQL), or D1 calls: each `first`/`all`/`run` and each `batch` counts one. */
  readonly count: number
  reset(): void
}

export interface SqlStores {
  mysql: CountedStore<ReturnType<typeof mysqlStore>>
  postgres: CountedStore<ReturnType<typeof postgresStore>>
  d1: CountedStore<ReturnType<typeof d1Store>>
  close(): Promise<void>
}

function counter() {
  let n = 0
  return {
    add: () => {
      n++
    },
    get count() {
      return n
    },
    reset: () => {
      n = 0
    },
  }
}

/**
 * A D1 binding counting its round trips: a `batch()` is one (a single request carrying its statements), and so is
 * each statement run on its own. A prepared statement costs nothing until it runs.
 */
function countingD1(database: D1Binding, add: () => void): D1Binding {
  const real = new WeakMap<D1Statement, D1Statement>()
  const wrap = (statement: D1Statement): D1Statement => {
    const wrapped: D1Statement = {
      bind: (...values) => wrap(statement.bind(...values)),
      first: () => {
        add()
        return statement.first()
      },
      all: () => {
        add()
        return statement.all()
      },
      run: () => {
        add()
        return statement.run()
      },
    }
    real.set(wrapped, statement)
    return wrapped
  }
  return {
    prepare: (query) => wrap(database.prepare(query)),
    batch: (statements) => {
      add()
      return database.batch(statements.map((s) => real.get(s) ?? s))
    },
  }
}

/**
 * Opens the three SQL stores on tables named `table` (migrated here, not counted): MySQL and PostgreSQL on the
 * given servers, D1 in a Miniflare of its own (in memory), stopped by `close()` with the pools.
 */
export async function openSqlStores(servers: SqlServers, table: string): Promise<SqlStores> {
  const mysqlCount = counter()
  const pool = createPool({ uri: servers.mysqlUrl, connectionLimit: 4 })
  const mysql = mysqlStore({
    pool: {
      query: (sql, values) => {
        mysqlCount.add()
        return pool.query(sql, values as never) as never
      },
    },
    table,
  })
  const pgCount = counter()
  const sql = postgres(servers.postgresUrl, { max: 4, onnotice: () => {} })
  const pg = postgresStore({
    sql: {
      unsafe: (query, params) => {
        pgCount.add()
        return sql.unsafe(query, params)
      },
    },
    table,
  })
  const miniflare = new Miniflare({
    modules: true,
    script: 'export default { fetch() { return new Response("") } }',
    compatibilityDate: '2026-04-26',
    d1Databases: ['DB'],
  })
  const d1Count = counter()
  const d1 = d1Store({
    database: countingD1((await miniflare.getD1Database('DB')) as unknown as D1Binding, d1Count.add),
    table,
  })
  const close = async () => {
    await Promise.allSettled([pool.end(), sql.end({ timeout: 5 }), miniflare.dispose()])
  }
  try {
    await Promise.all([mysql.migrate(), pg.migrate(), d1.migrate()])
  } catch (error) {
    await close()
    throw error
  }
  mysqlCount.reset()
  pgCount.reset()
  d1Count.reset()
  const counted = <S>(store: S, c: ReturnType<typeof counter>): CountedStore<S> => ({
    store,
    get count() {
      return c.count
    },
    reset: c.reset,
  })
  return {
    mysql: counted(mysql, mysqlCount),
    postgres: counted(pg, pgCount),
    d1: counted(d1, d1Count),
    close,
  }
}
