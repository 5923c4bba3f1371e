/** @module postgresStore(): sessions in a PostgreSQL table, one row per session, patches merged by jsonb operators. */

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
 * What the store needs of a client: postgres.js's `sql.unsafe(text, params)`, answering the rows. Any other
 * driver fits in a few lines (see the README): `{ unsafe: (text, params) => pool.query(text, params).then((r) => r.rows) }`.
 * A `cancel()` on the answer (postgres.js has one) is called when the sessions layer gives up on the call.
 */
export interface PostgresClient {
  unsafe(query: string, params?: never[]): PromiseLike<readonly object[]> & { cancel?: () => unknown }
}

export interface PostgresStoreOptions {
  /** A postgres.js client (`postgres(url)`), or any object with its `unsafe(text, params)`. */
  sql: PostgresClient
  /** The table, a plain identifier; `'sessions'` by default. Create it with `migrate()`. */
  table?: string
}

export interface PostgresStore extends ServerStore {
  count(ctx: StoreContext): Promise<number>
  /** Creates the table and its indexes if missing. Idempotent, safe to run from several processes at once. */
  migrate(env?: unknown): Promise<void>
  /** Deletes up to `limit` (default 1000) expired rows, oldest deadline first; resolves how many. */
  prune(options?: { limit?: number }, env?: unknown): Promise<number>
}

const NAME = 'postgresStore'
/** jsonb's own limit is 255 MiB (268 435 455 bytes) per value; checked before writing. */
const MAX_JSONB = 268_435_455
/** The database's clock in milliseconds: deadlines are judged by it alone, as Redis judges its TTLs. */
const NOW = `(extract(epoch from statement_timestamp()) * 1000)::bigint`

/**
 * Keeps sessions in a PostgreSQL table through postgres.js (or a few-line adapter over `pg` or Neon): one row per
 * session, data and flash markers as jsonb, a deadline on the database's clock. A patch is one UPDATE merging
 * the changed keys with jsonb operators, so concurrent requests changing different keys both persist, and a
 * destroyed or expired row is never recreated. Regenerate is one statement (delete the old row, insert the new).
 * Rows past their deadline are never read; `prune()` removes them in bounded batches (run it on a timer).
 *
 * jsonb cannot hold `\u0000` nor lone surrogates: such strings are stored escaped and come back exactly.
 *
 * @param options `sql`, the client; `table`, default `'sessions'`.
 * @example
 * ```ts
 * const store = postgresStore({ sql: postgres(databaseUrl) })
 * await store.migrate()
 * ```
 * @see `docs/postgres.md` for the schema, the escaping, pruning and adapters.
 */
export function postgresStore(options: PostgresStoreOptions): PostgresStore {
  const table = checkTable(NAME, options?.table)
  const sql = options?.sql
  if (!sql || typeof sql.unsafe !== 'function') {
    throw new SessionError('ERR_CONFIG', `${NAME}(): sql must be a postgres.js client (with unsafe())`)
  }
  const t = `"${table}"`
  const live = `deadline > ${NOW}`
  const keysOf = (param: string) => `(select jsonb_array_elements_text(${param}::text::jsonb))`

  const run = async (
    query: string,
    params: unknown[],
    ctx?: StoreContext,
  ): Promise<Record<string, unknown>[]> => {
    const pending = sql.unsafe(query, params as never[])
    const signal = ctx?.signal
    // A call the sessions layer gave up on (storeTimeout) is cancelled on the server, where the driver can.
    const cancel = () => {
      try {
        Promise.resolve(pending.cancel?.()).catch(() => {})
      } catch {
        // Nothing more to do: the sessions layer has already answered ERR_STORE.
      }
    }
    if (signal?.aborted) cancel()
    signal?.addEventListener('abort', cancel, { once: true })
    try {
      return (await pending) as Record<string, unknown>[]
    } catch (error) {
      // SQLSTATE 54000, program_limit_exceeded: a merged jsonb value past its 255 MiB (a data error, not a 503).
      if ((error as { code?: unknown } | null)?.code === '54000') {
        throw new SessionError('ERR_TOO_LARGE', `${NAME}(): a session exceeds a PostgreSQL limit`, {
          cause: error,
        })
      }
      throw error
    } finally {
      signal?.removeEventListener('abort', cancel)
    }
  }

  const readRow = (row: Record<string, unknown> | undefined): SessionRecord | null =>
    row ? rowRecord(decode(row.data), decode(row.meta), decode(row.flash)) : null

  const COLUMNS = 'data::text as data, meta::text as meta, flash::text as flash'
  const SELECT = `select key, ${COLUMNS} from ${t}`
  // An UPDATE's RETURNING sees the row as the statement left it: the merged record, read in the same statement.
  const returning = (ctx: StoreContext) => (ctx.returnRecord ? COLUMNS : '1')
  /** What a patch or touch answers: false when no live row was there, else true or (`returnRecord`) the row. */
  const answer = (rows: Record<string, unknown>[], ctx: StoreContext): WriteAnswer => {
    if (rows.length === 0) return false
    return ctx.returnRecord ? (readRow(rows[0]) ?? true) : true
  }
  const INSERT = `insert into ${t} (key, data, flash, meta, deadline, user_key, handle)
    select $1::text, $2::text::jsonb, $3::text::jsonb, $4::text::jsonb, ${NOW} + $5::bigint, $6::text, $7::text`
  const UPSERT = `on conflict (key) do update set data = excluded.data, flash = excluded.flash, meta = excluded.meta,
    deadline = excluded.deadline, user_key = excluded.user_key, handle = excluded.handle`

  const store: PostgresStore = {
    kind: 'server',
    name: 'postgres',
    async get(key, ctx) {
      const rows = await run(`${SELECT} where key = $1::text and ${live}`, [key], ctx)
      return readRow(rows[0])
    },
    async set(key, record, ttl, ctx, replaces) {
      const flash: Record<string, true> = Object.create(null)
      for (const name of record.meta.flash ?? []) flash[name] = true
      const params = [
        key,
        encode(JSON.stringify(record.data)),
        encode(JSON.stringify(flash)),
        encode(metaColumn(record.meta)),
        Math.ceil(ttl),
        record.meta.user?.key ?? null,
        record.meta.handle ?? null,
      ]
      checkSize(params[1] as string, params[3] as string)
      if (replaces === undefined) {
        await run(`${INSERT} ${UPSERT}`, params, ctx)
        return true
      }
      // One statement, so atomic: the old row deleted and the new one inserted, or neither. The final SELECT sees
      // the table as it was before the statement: a live `key` there means a retry of a write that landed.
      const rows = await run(
        `with old as (delete from ${t} where key = $8::text and ${live} returning 1),
         ins as (${INSERT} where exists (select 1 from old) ${UPSERT} returning 1)
         select exists (select 1 from ins) or exists (select 1 from ${t} where key = $1::text and ${live}) as ok`,
        [...params, replaces],
        ctx,
      )
      return rows[0]?.ok === true
    },
    async patch(key, patch: RecordPatch, ttl, ctx) {
      const set = encode(JSON.stringify(patch.set))
      const named = [...patch.delete, ...Object.keys(patch.set)]
      const flash: Record<string, true> = Object.create(null)
      for (const name of patch.flash) flash[name] = true
      checkSize(set)
      const rows = await run(
        `update ${t} set data = (data - array${keysOf('$2')}) || $3::text::jsonb,
           flash = (flash - array${keysOf('$4')}) || $5::text::jsonb,
           meta = meta || $6::text::jsonb, deadline = ${NOW} + $7::bigint
         where key = $1::text and ${live} returning ${returning(ctx)}`,
        [
          key,
          encode(JSON.stringify(patch.delete)),
          set,
          encode(JSON.stringify(named)),
          encode(JSON.stringify(flash)),
          JSON.stringify(times(patch.meta)),
          Math.ceil(ttl),
        ],
        ctx,
      )
      return answer(rows, ctx)
    },
    async touch(key, meta, ttl, ctx) {
      const rows = await run(
        `update ${t} set meta = meta || $2::text::jsonb, deadline = ${NOW} + $3::bigint
         where key = $1::text and ${live} returning ${returning(ctx)}`,
        [key, JSON.stringify(times(meta)), Math.ceil(ttl)],
        ctx,
      )
      return answer(rows, ctx)
    },
    async delete(key, ctx) {
      await run(`delete from ${t} where key = $1::text`, [key], ctx)
    },
    async count(ctx) {
      const rows = await run(`select count(*)::int as n from ${t} where ${live}`, [], ctx)
      return Number(rows[0]?.n ?? 0)
    },
    async userEntries(user, ctx) {
      const rows = await run(
        `select key, handle from ${t} where user_key = $1::text and ${live} and handle is not null`,
        [user],
        ctx,
      )
      return rows.map((row) => ({ key: String(row.key), handle: String(row.handle) }))
    },
    async getMany(keys, ctx) {
      if (keys.length === 0) return []
      const rows = await run(
        `${SELECT} where key in ${keysOf('$1')} and ${live}`,
        [JSON.stringify(keys)],
        ctx,
      )
      const found = new Map(rows.map((row) => [String(row.key), row]))
      return keys.map((key) => readRow(found.get(key)))
    },
    async revokeUser(user, keys, ctx) {
      if (keys.length === 0) return 0
      const rows = await run(
        `with gone as (delete from ${t} where user_key = $1::text and key in ${keysOf('$2')} returning deadline)
         select (count(*) filter (where deadline > ${NOW}))::int as n from gone`,
        [user, JSON.stringify(keys)],
        ctx,
      )
      return Number(rows[0]?.n ?? 0)
    },
    async countUsers(ctx) {
      const rows = await run(
        `select count(distinct user_key)::int as n from ${t} where user_key is not null and ${live}`,
        [],
        ctx,
      )
      return Number(rows[0]?.n ?? 0)
    },
    async migrate() {
      // One DO block is one statement in one transaction; the advisory lock serialises concurrent migrations,
      // which CREATE ... IF NOT EXISTS alone does not (two creators race on the catalog's unique index).
      await guarded('migrate', () =>
        run(
          `do $$ begin
            perform pg_advisory_xact_lock(hashtext('edge-session migrate ${table}'));
            create table if not exists ${t} (
              key text collate "C" primary key,
              data jsonb not null,
              flash jsonb not null default '{}',
              meta jsonb not null,
              deadline bigint not null,
              user_key text collate "C",
              handle text
            );
            create index if not exists "${table}_deadline" on ${t} (deadline);
            create index if not exists "${table}_user" on ${t} (user_key, deadline);
          end $$`,
          [],
        ),
      )
    },
    async prune(pruneOptions, _env) {
      const limit = checkPruneLimit(NAME, pruneOptions?.limit)
      // Oldest deadlines first through the deadline index; rows another pruner holds are skipped, not waited for.
      const rows = await guarded('prune', () =>
        run(
          `with doomed as (select key from ${t} where deadline <= ${NOW} order by deadline limit $1::int
             for update skip locked),
           gone as (delete from ${t} where key in (select key from doomed) and deadline <= ${NOW} returning 1)
           select count(*)::int as n from gone`,
          [limit],
        ),
      )
      return Number(rows[0]?.n ?? 0)
    },
  }
  return store
}

/** The times alone, for `meta || times`: the handle and user a row holds stay. */
function times(meta: SessionTimes): SessionTimes {
  return { createdAt: meta.createdAt, lastSeenAt: meta.lastSeenAt, expiresAt: meta.expiresAt }
}

async function guarded<T>(operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (error) {
    // The driver's message may quote values; the code (a SQLSTATE) does not.
    const code = (error as { code?: unknown } | null)?.code
    const state = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? ` (SQLSTATE ${code})` : ''
    throw new SessionError('ERR_STORE', `${NAME}(): ${operation} failed${state}`, { cause: error })
  }
}

function checkSize(...texts: string[]): void {
  for (const text of texts) {
    // UTF-8 takes at least a byte per UTF-16 unit and at most three: only texts near the limit are measured.
    if (text.length * 3 > MAX_JSONB && utf8Length(text) > MAX_JSONB) {
      throw new SessionError('ERR_TOO_LARGE', `${NAME}(): a session value exceeds jsonb's 255 MiB limit`)
    }
  }
}

/**
 * JSON text made storable in jsonb, which refuses `\u0000` and lone surrogates in strings (keys included).
 * U+0001 becomes the escape character: `\u0000` is stored as U+0001 '0', U+0001 itself as U+0001 '1', a lone
 * surrogate `\udXXX` as U+0001 's' dXXX. Works on the escapes `JSON.stringify` writes (lowercase hex), skipping
 * escaped backslashes so `\\u0000` (a backslash, then text) is left alone.
 */
export function encode(json: string): string {
  if (!json.includes('\\u')) return json
  return json.replace(/\\(\\|u000[01]|ud[89a-f][0-9a-f]{2})/g, (match, seq: string) => {
    if (seq === '\\') return match
    if (seq === 'u0000') return '\\u00010'
    if (seq === 'u0001') return '\\u00011'
    return `\\u0001s${seq.slice(1)}`
  })
}

/** {@link encode} undone on the text PostgreSQL writes for jsonb (control characters as lowercase `\u00XX`). */
export function decode(value: unknown): unknown {
  if (typeof value !== 'string' || !value.includes('\\u0001')) return value
  return value.replace(
    /\\(\\|u0001(?:0|1|s(d[89a-f][0-9a-f]{2})))/g,
    (match, seq: string, surrogate?: string) => {
      if (seq === '\\') return match
      if (surrogate !== undefined) return `\\u${surrogate}`
      return seq.endsWith('0') ? '\\u0000' : '\\u0001'
    },
  )
}
