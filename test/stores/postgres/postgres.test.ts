/**
 * @module postgresStore() against a real PostgreSQL started for this file: the conformance suite (per-user part
 * included), directly and through a `pg`-style adapter; keys and values jsonb refuses; limits; migrate, prune;
 * round trips.
 */
import { createSessions, isSessionError, type SessionError, type SessionsOptions } from 'edge-session'
import { type PostgresClient, postgresStore } from 'edge-session/stores/postgres'
import postgres from 'postgres'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { describeStoreConformance } from '../../shared/conformance.ts'
import {
  ctx,
  expectEveryKeyKept,
  expectFlashKeptFromRacingRequests,
  expectRevokeOnlyTheUsers,
  HOUR,
  measureEach,
  meta,
  newKey,
  oneRequestOfEach,
  patch,
  perUserSteps,
  ROUND_TRIP_BUDGET,
  record,
  rejection,
  USER_ROUND_TRIP_BUDGET,
} from '../../shared/redis-checks.ts'
import { CookieJar } from '../../support/jar.ts'
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

const nextTable = () => `sessions_${++tables}`

/** A migrated store on a fresh table, through `client` (postgres.js by default). */
async function freshStore(client: PostgresClient = sql) {
  const table = nextTable()
  const store = postgresStore({ sql: client, table })
  await store.migrate()
  return { store, table }
}

describeStoreConformance({
  name: 'postgres',
  kind: 'server',
  // A fresh table per test: its own empty key space.
  createStore: async () => (await freshStore()).store,
})

/**
 * A client shaped as `pg`'s Pool (`query(text, values)` answering `{ rows }`), built over postgres.js; the store
 * gets it through the README's one-line adapter.
 */
const pgLikePool = {
  query: async (text: string, values: unknown[] = []) => ({
    rows: await sql.unsafe(text, values as postgres.ParameterOrJSON<never>[]),
  }),
}
const fromPg = (pool: typeof pgLikePool): PostgresClient => ({
  unsafe: (text, params) => pool.query(text, params).then((r) => r.rows),
})

describeStoreConformance({
  name: 'postgres through a pg-style adapter',
  kind: 'server',
  createStore: async () => (await freshStore(fromPg(pgLikePool))).store,
})

/** Keys and values that jsonb refuses or that an escaping scheme could confuse. */
const AWKWARD_STRINGS = [
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udc00y',
  '\udbff',
  '\u0001',
  '\u00010',
  '\u0001s',
  '\u0001sd800',
  '\\u0000',
  '\\\u0000',
  '\\u0001sd800',
  '"',
  "'",
  '\\',
  'a.b',
  '$.a',
  '{a}',
  '__proto__',
  '',
  '🍣',
  '\ud83c\udf63',
]

describe('postgresStore', () => {
  it('keeps every string key, __proto__ and the empty one included, through set and patch', async () => {
    await expectEveryKeyKept((await freshStore()).store)
  })

  it('round-trips the strings jsonb refuses (NUL, lone surrogates) as keys and values, through set and patch', async () => {
    const { store, table } = await freshStore()
    const data: Record<string, unknown> = Object.create(null)
    AWKWARD_STRINGS.forEach((text, i) => {
      data[text] = { text, list: [text, i], [text]: text }
    })
    const key = newKey()
    await store.set(key, record(data, { flash: ['\u0000', '\ud800'] }), HOUR, ctx())
    expect(await store.get(key, ctx())).toEqual(record(data, { flash: ['\u0000', '\ud800'] }))

    const other = newKey()
    await store.set(other, record({ keep: 1 }), HOUR, ctx())
    expect(await store.patch(other, patch(data, [], { flash: ['a\u0000b', '__proto__'] }), HOUR, ctx())).toBe(
      true,
    )
    expect(await store.get(other, ctx())).toEqual(
      record({ keep: 1, ...data }, { flash: ['a\u0000b', '__proto__'] }),
    )
    // The record a patch answers for the cookie cache is decoded as a read is: the escapes undone.
    const answered = await store.patch(other, patch({ more: '\u0000' }), HOUR, {
      ...ctx(),
      returnRecord: true,
    })
    expect(answered).toEqual(
      record({ keep: 1, ...data, more: '\u0000' }, { flash: ['a\u0000b', '__proto__'] }),
    )
    expect(await store.patch(other, patch({}, [...AWKWARD_STRINGS, 'more']), HOUR, ctx())).toBe(true)
    expect(await store.get(other, ctx())).toEqual(record({ keep: 1 }))
    // Stored as jsonb, not as text that merely looks like it: the patch above merged in the database.
    const [row] = await sql.unsafe(`select jsonb_typeof(data) as type from ${table} where key = $1`, [other])
    expect(row?.type).toBe('object')
  })

  it('round-trips numbers jsonb keeps as numeric exactly: extremes, long fractions, large integers', async () => {
    const { store } = await freshStore()
    const numbers = {
      max: Number.MAX_VALUE,
      tiny: Number.MIN_VALUE,
      sum: 0.1 + 0.2,
      big: 1e21,
      safe: Number.MAX_SAFE_INTEGER,
      negative: -Number.MAX_SAFE_INTEGER,
      small: 1.5e-300,
    }
    const key = newKey()
    await store.set(key, record({ numbers }), HOUR, ctx())
    expect(await store.patch(key, patch({ again: numbers }), HOUR, ctx())).toBe(true)
    const data = (await store.get(key, ctx()))?.data as Record<string, Record<string, number>> | undefined
    for (const [name, value] of Object.entries(numbers)) {
      expect(data?.numbers?.[name]).toBe(value)
      expect(data?.again?.[name]).toBe(value)
    }
  })

  it('patches 200 keys at once, every one of them awkward', async () => {
    const { store } = await freshStore()
    const key = newKey()
    await store.set(key, record({ first: true }), HOUR, ctx())
    const set: Record<string, unknown> = Object.create(null)
    for (let i = 0; i < 200; i++) set[`${AWKWARD_STRINGS[i % AWKWARD_STRINGS.length]}#${i}`] = i
    expect(await store.patch(key, patch(set), HOUR, ctx())).toBe(true)
    expect((await store.get(key, ctx()))?.data).toEqual({ first: true, ...set })
    expect(await store.patch(key, patch({}, Object.keys(set).slice(0, 200)), HOUR, ctx())).toBe(true)
    expect((await store.get(key, ctx()))?.data).toEqual({ first: true })
  })

  it('judges expiry by the database clock: a row past its TTL is not read, patched, touched or counted', async () => {
    const { store } = await freshStore()
    const [short, long] = [newKey(), newKey()]
    await store.set(short, record({ a: 1 }), 1, ctx())
    await store.set(long, record({ a: 2 }), HOUR, ctx())
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(await store.get(short, ctx())).toBeNull()
    expect(await store.patch(short, patch({ b: 2 }), HOUR, ctx())).toBe(false)
    expect(await store.touch?.(short, meta(), HOUR, ctx())).toBe(false)
    expect(await store.get(short, ctx())).toBeNull()
    expect(await store.count(ctx())).toBe(1)
    // Nor does a regenerate from it write anything.
    const fresh = newKey()
    expect(await store.set(fresh, record({ c: 3 }), HOUR, ctx(), short)).toBe(false)
    expect(await store.get(fresh, ctx())).toBeNull()
  })

  it('regenerates atomically: one of two racing regenerates of a session wins, and a retry of it answers true', async () => {
    const { store } = await freshStore()
    const old = newKey()
    await store.set(old, record({ a: 1 }), HOUR, ctx())
    const [k1, k2] = [newKey(), newKey()]
    const results = await Promise.all([
      store.set(k1, record({ a: 1, n: 1 }), HOUR, ctx(), old),
      store.set(k2, record({ a: 1, n: 2 }), HOUR, ctx(), old),
    ])
    expect([...results].sort()).toEqual([false, true])
    const winner = results[0] ? k1 : k2
    const rows = await Promise.all([old, k1, k2].map((k) => store.get(k, ctx())))
    expect(rows.filter((r) => r !== null)).toHaveLength(1)
    expect(await store.get(winner, ctx())).toEqual(record({ a: 1, n: winner === k1 ? 1 : 2 }))
    expect(await store.set(winner, record({ a: 1, n: 9 }), HOUR, ctx(), old)).toBe(true)
  })

  it('refuses a value past jsonb’s 255 MiB with ERR_TOO_LARGE, writing nothing', async () => {
    const { store } = await freshStore()
    const huge = 'x'.repeat(268_435_456)
    const key = newKey()
    const error = await rejection(Promise.resolve().then(() => store.set(key, record({ huge }), HOUR, ctx())))
    expect(isSessionError(error, 'ERR_TOO_LARGE')).toBe(true)
    expect(await store.get(key, ctx())).toBeNull()
    await store.set(key, record({ a: 1 }), HOUR, ctx())
    const patched = await rejection(
      Promise.resolve().then(() => store.patch(key, patch({ huge }), HOUR, ctx())),
    )
    expect(isSessionError(patched, 'ERR_TOO_LARGE')).toBe(true)
    expect(await store.get(key, ctx())).toEqual(record({ a: 1 }))
  }, 60_000)

  it('maps PostgreSQL’s program_limit_exceeded (a merge past jsonb’s limit) to ERR_TOO_LARGE, other errors as they are', async () => {
    let fail: Error & { code?: string } = Object.assign(
      new Error('total size of jsonb object elements exceeds the maximum'),
      { code: '54000' },
    )
    const failing = postgresStore({ sql: { unsafe: () => Promise.reject(fail) } })
    const tooLarge = await rejection(Promise.resolve(failing.patch(newKey(), patch({ a: 1 }), HOUR, ctx())))
    expect(isSessionError(tooLarge, 'ERR_TOO_LARGE')).toBe(true)
    fail = Object.assign(new Error('connection terminated'), { code: '57P01' })
    expect(await rejection(Promise.resolve(failing.patch(newKey(), patch({ a: 1 }), HOUR, ctx())))).toBe(fail)
  })

  it('migrates twice and concurrently, keeping the rows', async () => {
    const table = nextTable()
    const stores = Array.from({ length: 6 }, () => postgresStore({ sql, table }))
    await Promise.all(stores.map((s) => s.migrate()))
    const key = newKey()
    await stores[0]?.set(key, record({ a: 1 }), HOUR, ctx())
    await Promise.all(stores.map((s) => s.migrate()))
    expect(await stores[1]?.get(key, ctx())).toEqual(record({ a: 1 }))
    const indexes = await sql.unsafe(`select indexname from pg_indexes where tablename = $1 order by 1`, [
      table,
    ])
    expect(indexes.map((r) => r.indexname)).toEqual([`${table}_deadline`, `${table}_pkey`, `${table}_user`])
  })

  it('prunes expired rows in bounded batches while sessions are written, never a live one', async () => {
    const { store, table } = await freshStore()
    await sql.unsafe(
      `insert into ${table} (key, data, flash, meta, deadline)
       select 'expired' || i, '{}', '{}', '{"createdAt":0,"lastSeenAt":0,"expiresAt":0}', i from generate_series(1, 2500) i`,
    )
    const live: string[] = []
    let writing = true
    const writer = (async () => {
      while (writing) {
        const key = newKey()
        await store.set(key, record({ n: live.length }), HOUR, ctx())
        expect(await store.patch(key, patch({ m: 1 }), HOUR, ctx())).toBe(true)
        live.push(key)
      }
    })()
    const pruned = [await store.prune(), await store.prune(), await store.prune({ limit: 400 })]
    pruned.push(await store.prune({ limit: 400 }), await store.prune())
    writing = false
    await writer
    expect(pruned).toEqual([1000, 1000, 400, 100, 0])
    expect(live.length).toBeGreaterThan(0)
    expect(await store.count(ctx())).toBe(live.length)
    for (const key of live) expect((await store.get(key, ctx()))?.data).toMatchObject({ m: 1 })
  })

  it('says ERR_CONFIG for a bad table or prune limit, and ERR_STORE without SQL values when migrate or prune fail', async () => {
    for (const table of ['a-b', 'x; drop table y', '1a', ''])
      expect(() => postgresStore({ sql, table })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }))
    expect(() => postgresStore({ sql: {} as PostgresClient })).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG' }),
    )
    const missing = postgresStore({ sql, table: 'never_migrated_secret_table' })
    for (const limit of [0, 1.5, 100_001])
      await expect(missing.prune({ limit })).rejects.toMatchObject({ code: 'ERR_CONFIG' })
    const pruneError = (await rejection(missing.prune())) as SessionError
    expect(pruneError.code).toBe('ERR_STORE')
    expect(pruneError.message).not.toMatch(/never_migrated|select|delete/i)
    const broken = postgresStore({
      sql: { unsafe: () => Promise.reject(new Error('connect ECONNREFUSED secret-host:5432')) },
    })
    const migrateError = (await rejection(broken.migrate())) as SessionError
    expect(migrateError.code).toBe('ERR_STORE')
    expect(migrateError.message).not.toMatch(/secret-host/)
  })

  it('gives up a write stuck on a lock past storeTimeout with ERR_STORE, and cancels it on the server', async () => {
    const { store, table } = await freshStore()
    const sessions = createSessions<Record<string, unknown>>({
      store,
      secrets: 'a-secret-of-at-least-32-characters!!',
      storeTimeout: 300,
    })
    const jar = new CookieJar()
    const first = await sessions.load(jar.request())
    first.set('a', 1)
    jar.update(await sessions.commit(first, new Response()))
    const session = await sessions.load(jar.request())
    session.set('a', 2)
    let release = () => {}
    const released = new Promise<void>((resolve) => {
      release = resolve
    })
    let locked = () => {}
    const isLocked = new Promise<void>((resolve) => {
      locked = resolve
    })
    // Another transaction holds the row's lock until released.
    const holder = sql.begin(async (tx) => {
      await tx.unsafe(`select 1 from ${table} for update`)
      locked()
      await released
    })
    await isLocked
    await expect(sessions.commit(session, new Response())).rejects.toMatchObject({ code: 'ERR_STORE' })
    // The cancel travels on a connection of its own: once it has landed, no statement waits on the lock any more
    // (without it the UPDATE would wait there, and write its value once the lock is released).
    const waiting = async () =>
      (
        await sql.unsafe(
          `select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like 'update%'`,
        )
      )[0]?.n
    for (let i = 0; i < 100 && (await waiting()) !== 0; i++) await new Promise((r) => setTimeout(r, 20))
    expect(await waiting()).toBe(0)
    release()
    await holder
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect((await sessions.load(jar.request())).get('a')).toBe(1)
  })

  it('keeps a flash set by one request when others that loaded before it commit after it', async () => {
    const { store } = await freshStore()
    await expectFlashKeptFromRacingRequests((now) =>
      createSessions({ store, secrets: 'a-secret-of-at-least-32-characters!!', now }),
    )
  })

  it('revokes only the sessions of the user named', async () => {
    await expectRevokeOnlyTheUsers((await freshStore()).store)
  })

  it('costs one statement to read, one more to change; two to list, revoke, regenerate; one to count users', async () => {
    let statements = 0
    const counting: PostgresClient = {
      unsafe: (text, params) => {
        statements++
        return sql.unsafe(text, params as postgres.ParameterOrJSON<never>[])
      },
    }
    const { store } = await freshStore(counting)
    let now = Date.UTC(2030, 0, 1)
    const options: SessionsOptions = {
      store,
      secrets: 'a-secret-of-at-least-32-characters!!',
      now: () => now,
      touchInterval: 60,
    }
    const meter = async () => {
      statements = 0
      return async () => statements
    }
    const advance = () => {
      now += 61_000
    }
    const sessions = createSessions<Record<string, unknown>>(options)
    expect(await measureEach(oneRequestOfEach(sessions, new CookieJar(), advance), meter)).toEqual(
      ROUND_TRIP_BUDGET,
    )
    const steps = await perUserSteps(sessions, new CookieJar(), advance)
    expect(await measureEach(steps, meter)).toEqual(USER_ROUND_TRIP_BUDGET)
  })
})
