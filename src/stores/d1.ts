/** @module Cloudflare D1 store: one SQLite row per session, merged in the database, expiring on D1's clock. */

import { SessionError } from '../errors.ts'
import type { ServerStore, SessionRecord, WriteAnswer } from '../store.ts'
import { storeConfigError, utf8Length } from './shared.ts'
import { checkPruneLimit, checkTable, metaColumn, rowRecord } from './sql-shared.ts'

/** The part of a D1 prepared statement this store uses. Structural: `@cloudflare/workers-types` stays optional. */
export interface D1Statement {
  bind(...values: unknown[]): D1Statement
  first<T = Record<string, unknown>>(): Promise<T | null>
  all<T = Record<string, unknown>>(): Promise<D1Answer<T>>
  run(): Promise<D1Answer<unknown>>
}

/** What D1 answers a statement with: its rows and how many rows it changed. */
export interface D1Answer<T> {
  results?: T[]
  meta?: { changes?: number }
}

/** The part of a Workers `D1Database` binding this store uses. */
export interface D1Binding {
  prepare(query: string): D1Statement
  batch<T = unknown>(statements: D1Statement[]): Promise<D1Answer<T>[]>
}

export interface D1StoreOptions<Env = Record<string, D1Binding>> {
  /** The D1 binding, or a function that picks it from the bindings passed to `sessions.load(request, env)`. */
  database: D1Binding | ((env: Env) => D1Binding | null | undefined)
  /** The table, default `'sessions'`: a plain identifier. */
  table?: string
}

/** The D1 store: a server store with its table's migration and garbage collection. */
export interface D1Store extends ServerStore {
  touch: NonNullable<ServerStore['touch']>
  count: NonNullable<ServerStore['count']>
  userEntries: NonNullable<ServerStore['userEntries']>
  getMany: NonNullable<ServerStore['getMany']>
  revokeUser: NonNullable<ServerStore['revokeUser']>
  countUsers: NonNullable<ServerStore['countUsers']>
  /** Creates the table and its indexes if missing. Idempotent, safe to run concurrently. */
  migrate(env?: unknown): Promise<void>
  /** Deletes up to `limit` (default 1000) expired rows, oldest deadline first; resolves how many. */
  prune(options?: { limit?: number }, env?: unknown): Promise<number>
}

/** D1 refuses strings and rows over 2 000 000 bytes (SQLite's `SQLITE_MAX_LENGTH` as D1 sets it). */
export const MAX_ROW_BYTES = 2_000_000

/** D1's clock in milliseconds: a row's deadline is the database's now plus the TTL it was given. */
const NOW = "CAST(unixepoch('subsec') * 1000 AS INTEGER)"

/** The table and its indexes, as SQL for `table` (default `'sessions'`): what `migrate()` runs. */
export function d1Schema(table = 'sessions'): string {
  const name = checkTable('d1Store', table)
  // TEXT compares with SQLite's BINARY collation: keys are case-sensitive.
  return `CREATE TABLE IF NOT EXISTS ${name} (
  key TEXT PRIMARY KEY NOT NULL,
  data TEXT NOT NULL,
  flash TEXT NOT NULL DEFAULT '{}',
  meta TEXT NOT NULL,
  deadline INTEGER NOT NULL,
  user_key TEXT,
  handle TEXT
);
CREATE INDEX IF NOT EXISTS ${name}_deadline ON ${name} (deadline);
CREATE INDEX IF NOT EXISTS ${name}_user ON ${name} (user_key, deadline);
`
}

/** The migration for `wrangler d1 migrations` (`migrations/0001_sessions.sql`): the default table. */
export const D1_MIGRATION = d1Schema()

/**
 * A session store in Cloudflare D1: one row per session (`key`, `data`, `flash`, `meta`, `deadline`, `user_key`,
 * `handle`), the deadline on D1's clock. Every read, change and count skips rows past their deadline, pruned or
 * not. A change is one `UPDATE` that merges the changed keys into the stored JSON (`json_patch`, then the new
 * members appended), so concurrent requests changing different keys both persist and a destroyed row is never
 * recreated; a regenerate is one `batch()` (a transaction). Any key works, any number of them (one JSON parameter).
 *
 * Run `migrate()` once (or apply `migrations/0001_sessions.sql` with `wrangler d1 migrations`), and `prune()` from
 * a Cron Trigger: expired rows are invisible but kept until pruned. Rows over 2 000 000 bytes are `ERR_TOO_LARGE`.
 * The whole story: docs/d1.md.
 *
 * @param options `database`, the binding or `(env) => env.DB`; `table`, default `'sessions'`.
 * @example
 * ```ts
 * const store = d1Store({ database: (env: Env) => env.DB })
 * const sessions = createSessions({ store, secrets })
 * ```
 */
export function d1Store<Env = Record<string, D1Binding>>(options: D1StoreOptions<Env>): D1Store {
  const { database, table: tableOption } = options ?? ({} as D1StoreOptions<Env>)
  if (typeof database !== 'function' && !isD1(database)) {
    throw storeConfigError('d1Store', '`database` must be a D1 binding or a function (env) => binding')
  }
  const table = checkTable('d1Store', tableOption)

  const dbFor = (env: unknown): D1Binding => {
    if (typeof database !== 'function') return database
    if (env === undefined || env === null) {
      throw storeConfigError(
        'd1Store',
        '`database` takes the D1 binding from the Workers env, but none was passed: call sessions.load(request, env)',
      )
    }
    const db = database(env as Env)
    if (!isD1(db)) {
      throw storeConfigError(
        'd1Store',
        'the `database` function returned no D1 binding; is it declared in the Wrangler configuration?',
      )
    }
    return db
  }

  const live = `deadline > ${NOW}`
  const columns = 'key, data, flash, meta, deadline, user_key, handle'
  const values = `?1, ?2, ?3, ?4, ${NOW} + CAST(?5 AS INTEGER), ?6, ?7`
  const upsert = `ON CONFLICT (key) DO UPDATE SET data = excluded.data, flash = excluded.flash, meta = excluded.meta,
    deadline = excluded.deadline, user_key = excluded.user_key, handle = excluded.handle`
  const sql = {
    get: `SELECT data, flash, meta FROM ${table} WHERE key = ?1 AND ${live}`,
    set: `INSERT INTO ${table} (${columns}) VALUES (${values}) ${upsert}`,
    // Written only while the old row is live: a concurrent destroy is not undone. The WHERE also settles the
    // grammar of INSERT ... SELECT ... ON CONFLICT.
    move: `INSERT INTO ${table} (${columns}) SELECT ${values}
      WHERE EXISTS (SELECT 1 FROM ${table} WHERE key = ?8 AND ${live}) ${upsert}`,
    moved: `SELECT EXISTS (SELECT 1 FROM ${table} WHERE key = ?1 AND ${live}) AS present`,
    // The named keys are removed by json_patch (RFC 7396: a null member removes), then the new members are
    // appended as JSON text: json_patch would merge nested objects and drop nulls, and JSON paths cannot name
    // every key (SQLite's path syntax has no escape for '"'). Values keep their exact JSON text.
    patch: `UPDATE ${table} SET
      data = (SELECT CASE WHEN ?2 = '{}' THEN d WHEN d = '{}' THEN ?2
        ELSE substr(d, 1, length(d) - 1) || ',' || substr(?2, 2) END FROM (SELECT json_patch(data, ?3) AS d)),
      flash = json_patch(flash, ?4), meta = json_patch(meta, ?5), deadline = ${NOW} + CAST(?6 AS INTEGER)
      WHERE key = ?1 AND ${live}`,
    touch: `UPDATE ${table} SET meta = json_patch(meta, ?2), deadline = ${NOW} + CAST(?3 AS INTEGER)
      WHERE key = ?1 AND ${live}`,
    // For `returnRecord`: the same statements answering the row as they left it (SQLite's RETURNING).
    returning: ' RETURNING data, flash, meta',
    delete: `DELETE FROM ${table} WHERE key = ?1`,
    count: `SELECT COUNT(*) AS n FROM ${table} WHERE ${live}`,
    userEntries: `SELECT key, handle FROM ${table} WHERE user_key = ?1 AND ${live} AND handle IS NOT NULL`,
    getMany: `SELECT key, data, flash, meta FROM ${table}
      WHERE key IN (SELECT value FROM json_each(?1)) AND ${live}`,
    // Expired rows named here go too; only live ones are counted as revoked.
    revokeUser: `DELETE FROM ${table} WHERE user_key = ?1 AND key IN (SELECT value FROM json_each(?2))
      RETURNING ${live} AS live`,
    countUsers: `SELECT COUNT(DISTINCT user_key) AS n FROM ${table} WHERE user_key IS NOT NULL AND ${live}`,
    // Through the deadline index, a bounded batch: never a long lock on the table.
    prune: `DELETE FROM ${table} WHERE key IN
      (SELECT key FROM ${table} WHERE deadline <= ${NOW} ORDER BY deadline LIMIT ?1)`,
  }

  /** The bound values of a whole-record write (?1 to ?7); `ERR_TOO_LARGE` before anything is sent. */
  const rowValues = (key: string, record: SessionRecord, ttl: number): unknown[] => {
    const data = JSON.stringify(record.data)
    const flash = flashObject(record.meta.flash ?? [])
    const meta = metaColumn(record.meta)
    checkSize(data.length + flash.length + meta.length, () => utf8Length(data + flash + meta))
    const user = record.meta.user
    return [key, data, flash, meta, ttl, user?.key ?? null, user ? (record.meta.handle ?? null) : null]
  }

  const store: D1Store = {
    kind: 'server',
    name: 'd1',

    async get(key, ctx) {
      const row = await dbFor(ctx.env).prepare(sql.get).bind(key).first<Row>()
      return row ? rowRecord(row.data, row.meta, row.flash) : null
    },

    async set(key, record, ttl, ctx, replaces) {
      const db = dbFor(ctx.env)
      const bound = rowValues(key, record, ttl)
      ctx.signal.throwIfAborted()
      if (replaces === undefined) {
        await tooLarge(
          db
            .prepare(sql.set)
            .bind(...bound)
            .run(),
        )
        return true
      }
      // One transaction: the new row written while the old one lives, the old one deleted, and whether the new
      // key is there (true for a retry of a write that landed: the new key is a fresh id only it writes).
      const [, , check] = await tooLarge(
        db.batch([
          db.prepare(sql.move).bind(...bound, replaces),
          db.prepare(sql.delete).bind(replaces),
          db.prepare(sql.moved).bind(key),
        ]),
      )
      return Number((check?.results?.[0] as { present?: unknown } | undefined)?.present) === 1
    },

    async patch(key, patch, ttl, ctx) {
      const db = dbFor(ctx.env)
      const set = JSON.stringify(patch.set)
      // Every named key removed, then the new members appended; flash markers: the named keys removed, the
      // patch's own flash keys marked (a later member wins in one json_patch object).
      const removed: Record<string, null | 1> = Object.create(null)
      for (const name of patch.delete) removed[name] = null
      for (const name of Object.keys(patch.set)) removed[name] = null
      const removeData = JSON.stringify(removed)
      for (const name of patch.flash) removed[name] = 1
      const flash = JSON.stringify(removed)
      checkSize(set.length, () => utf8Length(set))
      const times = JSON.stringify({
        createdAt: patch.meta.createdAt,
        lastSeenAt: patch.meta.lastSeenAt,
        expiresAt: patch.meta.expiresAt,
      })
      ctx.signal.throwIfAborted()
      const bound = [key, set, removeData, flash, times, ttl]
      if (ctx.returnRecord)
        return writtenRow(
          await tooLarge(
            db
              .prepare(sql.patch + sql.returning)
              .bind(...bound)
              .all<Row>(),
          ),
        )
      const answer = await tooLarge(
        db
          .prepare(sql.patch)
          .bind(...bound)
          .run(),
      )
      return (answer.meta?.changes ?? 0) > 0
    },

    async touch(key, times, ttl, ctx) {
      const value = JSON.stringify({
        createdAt: times.createdAt,
        lastSeenAt: times.lastSeenAt,
        expiresAt: times.expiresAt,
      })
      ctx.signal.throwIfAborted()
      const db = dbFor(ctx.env)
      if (ctx.returnRecord)
        return writtenRow(
          await db
            .prepare(sql.touch + sql.returning)
            .bind(key, value, ttl)
            .all<Row>(),
        )
      const answer = await db.prepare(sql.touch).bind(key, value, ttl).run()
      return (answer.meta?.changes ?? 0) > 0
    },

    async delete(key, ctx) {
      await dbFor(ctx.env).prepare(sql.delete).bind(key).run()
    },

    async count(ctx) {
      const row = await dbFor(ctx.env).prepare(sql.count).first<{ n: unknown }>()
      return Number(row?.n ?? 0)
    },

    async userEntries(user, ctx) {
      const { results = [] } = await dbFor(ctx.env)
        .prepare(sql.userEntries)
        .bind(user)
        .all<{ key: unknown; handle: unknown }>()
      const found: Array<{ key: string; handle: string }> = []
      for (const row of results) {
        if (typeof row.key === 'string' && typeof row.handle === 'string')
          found.push({ key: row.key, handle: row.handle })
      }
      return found
    },

    async getMany(keys, ctx) {
      if (keys.length === 0) return []
      const { results = [] } = await dbFor(ctx.env)
        .prepare(sql.getMany)
        .bind(JSON.stringify(keys))
        .all<Row & { key: unknown }>()
      const byKey = new Map<unknown, SessionRecord | null>()
      for (const row of results) byKey.set(row.key, rowRecord(row.data, row.meta, row.flash))
      return keys.map((key) => byKey.get(key) ?? null)
    },

    async revokeUser(user, keys, ctx) {
      if (keys.length === 0) return 0
      ctx.signal.throwIfAborted()
      const { results = [] } = await dbFor(ctx.env)
        .prepare(sql.revokeUser)
        .bind(user, JSON.stringify(keys))
        .all<{ live: unknown }>()
      return results.filter((row) => Number(row.live) === 1).length
    },

    async countUsers(ctx) {
      const row = await dbFor(ctx.env).prepare(sql.countUsers).first<{ n: unknown }>()
      return Number(row?.n ?? 0)
    },

    async migrate(env) {
      await storeFailure('migrate', async () => {
        const db = dbFor(env)
        const statements = d1Schema(table)
          .split(';')
          .map((statement) => statement.trim())
          .filter((statement) => statement !== '')
        await db.batch(statements.map((statement) => db.prepare(statement)))
      })
    },

    async prune(pruneOptions, env) {
      const limit = checkPruneLimit('d1Store', pruneOptions?.limit)
      return storeFailure('prune', async () => {
        const answer = await dbFor(env).prepare(sql.prune).bind(limit).run()
        return answer.meta?.changes ?? 0
      })
    },
  }
  return store
}

interface Row {
  data: unknown
  flash: unknown
  meta: unknown
}

/**
 * What a patch or touch with `returnRecord` answers: false when it changed no row, else the row it left, decoded
 * as `get` decodes it (true for a row that is no record: it was written all the same).
 */
function writtenRow(answer: D1Answer<Row>): WriteAnswer {
  const row = answer.results?.[0]
  return row ? (rowRecord(row.data, row.meta, row.flash) ?? true) : false
}

/** The flash column: an object whose keys are the flashed data keys (a set, merged key by key). */
function flashObject(keys: readonly string[]): string {
  const markers: Record<string, 1> = Object.create(null)
  for (const key of keys) markers[key] = 1
  return JSON.stringify(markers)
}

/** `ERR_TOO_LARGE` when a row would pass D1's limit; `bytes` is counted only when `units` could be over. */
function checkSize(units: number, bytes: () => number): void {
  // UTF-8 takes at most 3 bytes per UTF-16 unit.
  if (units * 3 <= MAX_ROW_BYTES) return
  const size = bytes()
  if (size > MAX_ROW_BYTES) throw tooLargeError(size)
}

function tooLargeError(size?: number, cause?: unknown): SessionError {
  const what = size === undefined ? 'the session' : `the session takes ${size} bytes;`
  return new SessionError(
    'ERR_TOO_LARGE',
    `d1Store(): ${what} D1 keeps rows of at most ${MAX_ROW_BYTES} bytes`,
    cause === undefined ? undefined : { cause },
  )
}

/** D1 reports a row grown past its limit by a merge as SQLITE_TOOBIG: a data error, not a store failure. */
async function tooLarge<T>(pending: Promise<T>): Promise<T> {
  try {
    return await pending
  } catch (error) {
    if (error instanceof Error && /SQLITE_TOOBIG|string or blob too big/i.test(error.message)) {
      throw tooLargeError(undefined, error)
    }
    throw error
  }
}

/** `migrate` and `prune` are called by the app, not the sessions layer: their failures are `ERR_STORE` here. */
async function storeFailure<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run()
  } catch (error) {
    if (error instanceof SessionError) throw error
    throw new SessionError('ERR_STORE', `d1Store(): ${what} failed`, { cause: error })
  }
}

function isD1(value: unknown): value is D1Binding {
  if (typeof value !== 'object' || value === null) return false
  const db = value as Record<string, unknown>
  return typeof db.prepare === 'function' && typeof db.batch === 'function'
}
