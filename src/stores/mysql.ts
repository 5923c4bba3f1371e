/** @module mysqlStore(): sessions in a MySQL or MariaDB table, one row per session, through a mysql2/promise pool. */

import { SessionError } from '../errors.ts'
import type {
  RecordPatch,
  ServerStore,
  SessionRecord,
  SessionTimes,
  StoreContext,
  WriteAnswer,
} from '../store.ts'
import { utf8Length } from './shared.ts'
import { checkPruneLimit, checkTable, metaColumn, rowRecord } from './sql-shared.ts'

/**
 * What the store uses of a mysql2/promise `Pool`: `query` (values escaped by the driver). Written out here so the
 * store's types need neither mysql2's nor Node's.
 */
export interface MysqlPool {
  query(sql: string, values?: unknown): Promise<readonly [unknown, ...unknown[]]>
}

export interface MysqlStoreOptions {
  /** A mysql2/promise pool (`createPool(...)`), shared with the app; the store never ends it. */
  pool: MysqlPool
  /** The table's name, a plain identifier; `'sessions'` by default. */
  table?: string
}

/** The MySQL store: a server store with `migrate()` and `prune()`. */
export interface MysqlStore extends ServerStore {
  /** Creates the table and its indexes if missing. Idempotent, safe to run concurrently. (`env` is unused.) */
  migrate(env?: unknown): Promise<void>
  /** Deletes up to `limit` (default 1000) expired rows, nearest deadlines first; resolves how many. */
  prune(options?: { limit?: number }, env?: unknown): Promise<number>
  count(ctx?: StoreContext): Promise<number>
}

/** The database's clock in ms (UTC, whatever the session's time zone): deadlines are judged on it alone. */
const NOW = "(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) DIV 1000)"

/**
 * Keeps sessions in a MySQL 8 or MariaDB 10.11 table, one row per session (`migrate()` creates it). Reads filter
 * on a deadline set by the database's clock (its now plus the TTL), so an expired row is never a session, pruned
 * or not; `prune()` deletes them in bounded batches (run it from a timer or a scheduled job).
 *
 * A patch is one UPDATE merging the changed keys into the stored JSON (`JSON_SET`/`JSON_REMOVE`): concurrent
 * requests changing different keys both persist, and a destroyed row is never recreated. A regenerate moves the
 * row to its new key in one UPDATE. Sessions per user are columns of the row. Strings with lone surrogates are
 * refused with `ERR_SERIALIZE`; a statement past `max_allowed_packet` is `ERR_TOO_LARGE`. See docs/mysql.md.
 *
 * @example
 * ```ts
 * const store = mysqlStore({ pool: createPool(databaseUrl) })
 * await store.migrate()
 * ```
 */
export function mysqlStore(options: MysqlStoreOptions): MysqlStore {
  const table = checkTable('mysqlStore', options.table)
  const pool = options.pool
  const t = `\`${table}\``

  const run = async <T>(sql: string, values: unknown[], signal?: AbortSignal): Promise<T> => {
    let retried = 0
    for (;;) {
      try {
        const [result] = await pool.query(sql, values)
        return result as T
      } catch (error) {
        const { sqlState, errno } = (error ?? {}) as { sqlState?: unknown; errno?: unknown }
        // Every statement here is idempotent (an upsert, JSON_SET of given values, a move that answers its own
        // retry), so two failures are sent again: InnoDB's deadlock victim (1213, rolled back whole, e.g. a
        // patch meeting prune's range lock), and a connection error, where the server may have closed an idle
        // pooled connection, or one whose statement passed max_allowed_packet, before the pool noticed.
        // Not once the sessions layer has given up on the call (storeTimeout): a write it reported as failed
        // must not be sent again later.
        const retry = errno === 1213 || (sqlState === undefined && retried === 0)
        if (retry && retried < 3 && !signal?.aborted) {
          retried++
          continue
        }
        // Past max_allowed_packet the server may close the connection before its error 1153 is read: the limit
        // is asked only for a large statement that failed so.
        const size = statementSize(sql, values)
        if (sqlState === undefined && size > 1024) {
          const limit = await pool.query('SELECT @@max_allowed_packet AS m').then(
            ([found]) => Number((found as Array<{ m?: unknown }>)[0]?.m),
            () => Number.NaN,
          )
          if (size > limit) throw tooLarge(error)
        }
        throw driverError(error)
      }
    }
  }
  const rows = (sql: string, values: unknown[]) => run<Array<Record<string, unknown>>>(sql, values)
  const changed = async (sql: string, values: unknown[], signal?: AbortSignal) =>
    (await run<{ affectedRows: number }>(sql, values, signal)).affectedRows

  const read = (row: Record<string, unknown> | undefined): SessionRecord | null =>
    row ? rowRecord(row.data, row.meta, row.flash) : null

  /** False once the server has refused `RETURNING` (MySQL 8 has none): writes then answer `true`. */
  let returning = true

  /**
   * A patch or touch: `changes` (a SET list, its `values`) applied to the live row under `key`. A plain UPDATE,
   * answering whether it changed a row. With `returnRecord` on MariaDB, which has no `UPDATE ... RETURNING`: the
   * same change as one `INSERT ... SELECT ... ON DUPLICATE KEY UPDATE ... RETURNING`. The SELECT finds the live
   * row (locked, FOR UPDATE, so concurrent writers queue rather than deadlock), the insert always meets it, and
   * the update applies the changes and answers the row it left: one statement, one round trip. No live row, no
   * insert: nothing is written, no row answered.
   */
  const write = async (
    key: string,
    changes: string,
    values: unknown[],
    ctx: StoreContext,
  ): Promise<WriteAnswer> => {
    if (ctx.returnRecord && returning) {
      try {
        const found = await run<Array<Record<string, unknown>>>(
          `INSERT INTO ${t} (\`key\`, data, flash, meta, deadline)
           SELECT * FROM (SELECT \`key\` AS k, data AS d, flash AS f, meta AS m, deadline AS dl FROM ${t}
             WHERE \`key\` = ? AND deadline > ${NOW} FOR UPDATE) AS live
           ON DUPLICATE KEY UPDATE ${changes} RETURNING data, flash, meta`,
          [key, ...values],
          ctx.signal,
        )
        const row = found[0]
        return row ? (read(row) ?? true) : false
      } catch (error) {
        // 1064, a syntax error: the server has no RETURNING (MySQL). Sent again as the plain UPDATE, once.
        if (!isSyntaxError(error)) throw error
        returning = false
      }
    }
    const count = await changed(
      `UPDATE ${t} SET ${changes} WHERE \`key\` = ? AND deadline > ${NOW}`,
      [...values, key],
      ctx.signal,
    )
    return count > 0
  }

  const store: MysqlStore = {
    kind: 'server',
    name: 'mysql',
    async get(key) {
      const found = await rows(`SELECT data, flash, meta FROM ${t} WHERE \`key\` = ? AND deadline > ${NOW}`, [
        key,
      ])
      return read(found[0])
    },
    async set(key, record, ttl, ctx, replaces) {
      const data = encode(record.data)
      const flash = encode(Object.fromEntries((record.meta.flash ?? []).map((k) => [k, true])))
      const meta = encode(JSON.parse(metaColumn(record.meta)))
      const user = record.meta.user?.key ?? null
      const handle = record.meta.handle ?? null
      if (replaces === undefined) {
        await changed(
          `INSERT INTO ${t} (\`key\`, data, flash, meta, deadline, user_key, handle) VALUES (?, ?, ?, ?, ${NOW} + ?, ?, ?)
           ON DUPLICATE KEY UPDATE data = VALUES(data), flash = VALUES(flash), meta = VALUES(meta),
           deadline = VALUES(deadline), user_key = VALUES(user_key), handle = VALUES(handle)`,
          [key, data, flash, meta, ttl, user, handle],
          ctx.signal,
        )
        return true
      }
      // Moving the row to its new key is one statement: the old key gone and the new one present, or neither.
      const moved = await changed(
        `UPDATE ${t} SET \`key\` = ?, data = ?, flash = ?, meta = ?, deadline = ${NOW} + ?, user_key = ?, handle = ?
         WHERE \`key\` = ? AND deadline > ${NOW}`,
        [key, data, flash, meta, ttl, user, handle, replaces],
        ctx.signal,
      ).catch((error: unknown) => {
        // The new key taken: only a retry of this very write can have put it there (the id is fresh).
        if (error instanceof SessionError && (error.cause as { errno?: number })?.errno === 1062) return 0
        throw error
      })
      if (moved > 0) return true
      // Nothing moved: a concurrent destroy, or a retry of a move that landed (the new key present).
      const found = await rows(`SELECT 1 AS x FROM ${t} WHERE \`key\` = ? AND deadline > ${NOW}`, [key])
      return found.length > 0
    },
    async patch(key, patch: RecordPatch, ttl, ctx) {
      const values: unknown[] = []
      const set = Object.keys(patch.set)
      let data = 'data'
      if (patch.delete.length > 0) {
        data = `JSON_REMOVE(${data}${', ?'.repeat(patch.delete.length)})`
        for (const name of patch.delete) values.push(path(name))
      }
      if (set.length > 0) {
        data = `JSON_SET(${data}${", ?, JSON_EXTRACT(?, '$')".repeat(set.length)})`
        for (const name of set) values.push(path(name), encode(patch.set[name]))
      }
      const flashed = new Set(patch.flash)
      const cleared = [...patch.delete, ...set.filter((name) => !flashed.has(name))]
      let flash = 'flash'
      if (cleared.length > 0) {
        flash = `JSON_REMOVE(${flash}${', ?'.repeat(cleared.length)})`
        for (const name of cleared) values.push(path(name))
      }
      if (flashed.size > 0) {
        flash = `JSON_SET(${flash}${', ?, 1'.repeat(flashed.size)})`
        for (const name of flashed) values.push(path(name))
      }
      const { createdAt, lastSeenAt, expiresAt } = patch.meta
      const changes = `data = ${data}, flash = ${flash},
        meta = JSON_SET(meta, '$.createdAt', ?, '$.lastSeenAt', ?, '$.expiresAt', ?), deadline = ${NOW} + ?`
      return write(key, changes, [...values, createdAt, lastSeenAt, expiresAt, ttl], ctx)
    },
    async touch(key, times: SessionTimes, ttl, ctx) {
      const changes = `meta = JSON_SET(meta, '$.createdAt', ?, '$.lastSeenAt', ?, '$.expiresAt', ?),
        deadline = ${NOW} + ?`
      return write(key, changes, [times.createdAt, times.lastSeenAt, times.expiresAt, ttl], ctx)
    },
    async delete(key, ctx) {
      await changed(`DELETE FROM ${t} WHERE \`key\` = ?`, [key], ctx.signal)
    },
    async count() {
      const [row] = await rows(`SELECT COUNT(*) AS n FROM ${t} WHERE deadline > ${NOW}`, [])
      return Number(row?.n ?? 0)
    },
    async userEntries(user) {
      const found = await rows(
        `SELECT \`key\`, handle FROM ${t} WHERE user_key = ? AND deadline > ${NOW} AND handle IS NOT NULL`,
        [user],
      )
      return found.map((row) => ({ key: String(row.key), handle: String(row.handle) }))
    },
    async getMany(keys) {
      if (keys.length === 0) return []
      const found = await rows(
        `SELECT \`key\`, data, flash, meta FROM ${t} WHERE \`key\` IN (?) AND deadline > ${NOW}`,
        [keys],
      )
      const byKey = new Map(found.map((row) => [String(row.key), row]))
      return keys.map((key) => read(byKey.get(key)))
    },
    async revokeUser(user, keys, ctx) {
      if (keys.length === 0) return 0
      // Expired rows are left to prune: they are not sessions, so they are not counted as revoked.
      return changed(
        `DELETE FROM ${t} WHERE user_key = ? AND \`key\` IN (?) AND deadline > ${NOW}`,
        [user, keys],
        ctx.signal,
      )
    },
    async countUsers() {
      const [row] = await rows(
        `SELECT COUNT(DISTINCT user_key) AS n FROM ${t} WHERE deadline > ${NOW} AND user_key IS NOT NULL`,
        [],
      )
      return Number(row?.n ?? 0)
    },
    async migrate() {
      // CREATE TABLE IF NOT EXISTS with its indexes inline: one atomic DDL, so concurrent migrations are safe.
      await admin('migrate', () =>
        run(
          `CREATE TABLE IF NOT EXISTS ${t} (
            \`key\` VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
            data JSON NOT NULL,
            flash JSON NOT NULL,
            meta JSON NOT NULL,
            deadline BIGINT NOT NULL,
            user_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
            handle VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
            INDEX ${table}_deadline (deadline),
            INDEX ${table}_user (user_key, deadline)
          ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`,
          [],
        ),
      )
    },
    async prune(pruneOptions = {}) {
      const limit = checkPruneLimit('mysqlStore', pruneOptions.limit)
      return admin('prune', () =>
        changed(`DELETE FROM ${t} WHERE deadline <= ${NOW} ORDER BY deadline LIMIT ${limit}`, []),
      )
    },
  }
  return store
}

/** `migrate`/`prune` failures as `ERR_STORE` naming the step; the driver's error (and its SQL) stays the cause. */
async function admin<T>(step: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (error) {
    if (error instanceof SessionError && error.code !== 'ERR_STORE') throw error
    const cause = error instanceof SessionError ? error.cause : error
    throw new SessionError('ERR_STORE', `mysqlStore(): ${step} failed: ${errorName(cause)}`, { cause })
  }
}

/**
 * A JSON path naming one member, whatever the key: MySQL and MariaDB read a double-quoted member as a JSON
 * string, so JSON.stringify's escaping is theirs.
 */
function path(key: string): string {
  return `$.${encode(key)}`
}

// A \uD800-\uDFFF escape not itself escaped: JSON.stringify writes lone surrogates so (RFC 8259 section 8.2), and
// MariaDB's JSON refuses them.
const LONE_SURROGATE = /(?<!\\)(?:\\\\)*\\ud[89a-f][0-9a-f]{2}/i

/** `value` as JSON text; `ERR_SERIALIZE` for what the engine's JSON would refuse or silently turn into null. */
function encode(value: unknown): string {
  const text = JSON.stringify(value)
  if (LONE_SURROGATE.test(text)) {
    throw new SessionError(
      'ERR_SERIALIZE',
      'mysqlStore(): a string holds a lone surrogate, which MySQL and MariaDB JSON cannot store',
    )
  }
  return text
}

/** A `driverError` whose cause is MySQL's 1064 (ER_PARSE_ERROR). */
function isSyntaxError(error: unknown): boolean {
  return error instanceof SessionError && (error.cause as { errno?: unknown } | undefined)?.errno === 1064
}

function tooLarge(cause: unknown): SessionError {
  return new SessionError(
    'ERR_TOO_LARGE',
    'mysqlStore(): the session is larger than the server accepts (max_allowed_packet)',
    { cause },
  )
}

/** The least size of a statement in bytes, its values unescaped: what max_allowed_packet is compared with. */
function statementSize(sql: string, values: readonly unknown[]): number {
  let size = sql.length
  for (const value of values) size += typeof value === 'string' ? utf8Length(value) : 8
  return size
}

/** The driver's code and errno, never its message (which may quote SQL values). */
function errorName(error: unknown): string {
  const { code, errno } = (error ?? {}) as { code?: unknown; errno?: unknown }
  if (code === undefined && errno === undefined) return error instanceof Error ? error.name : 'unknown error'
  return `${String(code)}${errno === undefined ? '' : ` (errno ${String(errno)})`}`
}

/**
 * A driver error as the session error a user should see. mysql2 names codes after MySQL 8, whose numbers from
 * 4000 up mean other things on MariaDB: the numbers mapped here mean the same on both, or are told apart by
 * their message.
 */
function driverError(error: unknown): SessionError {
  const { errno, message } = (error ?? {}) as { errno?: unknown; message?: unknown }
  const text = typeof message === 'string' ? message : ''
  // 1153: a packet past max_allowed_packet (a merged document past it is still kept and read back whole).
  if (errno === 1153) return tooLarge(error)
  // MySQL 8's 3140 (invalid JSON text); MariaDB's 4025 when its JSON column's CHECK (json_valid) refuses a value.
  if (errno === 3140 || (errno === 4025 && text.startsWith('CONSTRAINT'))) {
    return new SessionError('ERR_SERIALIZE', 'mysqlStore(): the server refused a value as JSON', {
      cause: error,
    })
  }
  return new SessionError('ERR_STORE', `mysqlStore(): ${errorName(error)}`, { cause: error })
}
