/** @module The D1 store's own promises, against Miniflare's D1 inside workerd: rows, merges, limits, upkeep. */
import { createSessions, isSessionError } from 'edge-session'
import { describe, expect, it } from 'vitest'
import type { RecordPatch, SessionRecord, StoreContext } from '../../../src/store.ts'
import { type D1Binding, d1Schema, d1Store, MAX_ROW_BYTES } from '../../../src/stores/d1.ts'
import { storageKey, TRICKY_VALUES } from '../../shared/conformance.ts'
import { CookieJar } from '../../support/jar.ts'
import { db, freshTable } from './d1-bindings.ts'

const ctx = (): StoreContext => ({ env: undefined, signal: new AbortController().signal })

async function fresh(table = freshTable()) {
  const store = d1Store({ database: db, table })
  await store.migrate()
  return { store, table }
}

const times = { createdAt: 1_000, lastSeenAt: 2_000, expiresAt: 3_000 }
const record = (data: Record<string, unknown>, meta: Partial<SessionRecord['meta']> = {}): SessionRecord => ({
  data: Object.assign(Object.create(null), data),
  meta: { ...times, ...meta },
})
const patchOf = (set: Record<string, unknown>, del: string[] = [], flash: string[] = []): RecordPatch => ({
  set: Object.assign(Object.create(null), set),
  delete: del,
  flash,
  meta: { createdAt: 1_000, lastSeenAt: 5_000, expiresAt: 9_000 },
})

/** The row as D1 holds it. */
async function row(table: string, key: string) {
  return db.prepare(`SELECT * FROM ${table} WHERE key = ?1`).bind(key).first<Record<string, unknown>>()
}

const dbNow = async () =>
  Number((await db.prepare("SELECT unixepoch('subsec') * 1000 AS now").first<{ now: number }>())?.now)

/** Keys that break naive SQL or JSON paths. */
const TRICKY_KEYS = [
  '',
  '__proto__',
  'constructor',
  'a.b',
  '$.x',
  'quote"d',
  "apos'trophe",
  'back\\slash',
  '[0]',
  'ünï 🍣',
  'line\nbreak',
  '\u0000nul',
  '{"json":1}',
]

/**
 * `got` holds exactly the keys and values of `expected`, compared as JSON text: a failure message then carries
 * lone surrogates escaped (the workerd test pool cannot send them to the runner as they are).
 */
function expectSameData(got: Record<string, unknown> | undefined, expected: Record<string, unknown>) {
  expect(Object.keys(got ?? {}).sort()).toEqual(Object.keys(expected).sort())
  for (const key of Object.keys(expected)) {
    expect(`${key}: ${JSON.stringify(got?.[key])}`).toBe(`${key}: ${JSON.stringify(expected[key])}`)
  }
}

describe('d1Store: rows', () => {
  it('writes one row: data, flash markers as an object, meta without them, user and handle in columns, deadline on D1 clock', async () => {
    const { store, table } = await fresh()
    const user = { id: 'ada', key: 'user-key-1', agent: 'UA', label: null }
    const before = await dbNow()
    await store.set('K', record({ a: 1, note: 'hi' }, { flash: ['note'], handle: 'h1', user }), 60_000, ctx())
    const after = await dbNow()
    const stored = await row(table, 'K')
    expect(JSON.parse(String(stored?.data))).toEqual({ a: 1, note: 'hi' })
    expect(JSON.parse(String(stored?.flash))).toEqual({ note: 1 })
    expect(JSON.parse(String(stored?.meta))).toEqual({ ...times, handle: 'h1', user })
    expect(stored?.user_key).toBe('user-key-1')
    expect(stored?.handle).toBe('h1')
    expect(Number(stored?.deadline)).toBeGreaterThanOrEqual(Math.floor(before) + 60_000)
    expect(Number(stored?.deadline)).toBeLessThanOrEqual(Math.ceil(after) + 60_000)
    // Keys are compared case-sensitively.
    await expect(store.get('k', ctx())).resolves.toBeNull()
    await expect(store.get('K', ctx())).resolves.toEqual(
      record({ a: 1, note: 'hi' }, { flash: ['note'], handle: 'h1', user }),
    )
  })

  it('merges a patch of 200 keys, tricky keys among them, in one statement; deletes and flash markers by key', async () => {
    const { store, table } = await fresh()
    const start: Record<string, unknown> = { keep: 'me', gone: 1, flashed: 'old' }
    for (const key of TRICKY_KEYS) start[`old ${key}`] = key
    await store.set('k', record(start, { flash: ['flashed', 'gone'] }), 60_000, ctx())

    const set: Record<string, unknown> = Object.create(null)
    for (let i = 0; i < 200 - TRICKY_KEYS.length; i++) set[`k${i}`] = { i, nested: { n: null } }
    for (const key of TRICKY_KEYS) set[key] = { key, nul: null }
    const patch = patchOf(set, ['gone', `old ${TRICKY_KEYS[1]}`], ['k0', '__proto__', 'quote"d'])
    expect(Object.keys(patch.set)).toHaveLength(200)
    await expect(store.patch('k', patch, 60_000, ctx())).resolves.toBe(true)

    const expected: Record<string, unknown> = Object.assign(Object.create(null), start, set)
    delete expected.gone
    delete expected[`old ${TRICKY_KEYS[1]}`]
    const got = await store.get('k', ctx())
    expect(Object.keys(got?.data ?? {}).sort()).toEqual(Object.keys(expected).sort())
    for (const key of Object.keys(expected)) expect(got?.data[key]).toEqual(expected[key])
    expect(got?.meta.flash?.sort()).toEqual(['__proto__', 'flashed', 'k0', 'quote"d'].sort())
    expect(got?.meta).toMatchObject(patch.meta)
    // The row is still well-formed JSON an operator can query.
    const stored = await row(table, 'k')
    expect(() => JSON.parse(String(stored?.data))).not.toThrow()
  })

  it('round-trips values exactly: tricky values, unicode, NUL and lone surrogates, numbers at their limits', async () => {
    const { store } = await fresh()
    const values: Record<string, unknown> = {
      ...TRICKY_VALUES,
      lone: '\ud800 and \udfff',
      precise: 0.30000000000000004,
      huge: 1e300,
      tiny: 5e-324,
      negativeFraction: -0.5,
      maxSafe: Number.MAX_SAFE_INTEGER,
      beyondInt64: 1.2345678901234567e19,
    }
    await store.set('whole', record(values), 60_000, ctx())
    expectSameData((await store.get('whole', ctx()))?.data, values)
    await store.set('patched', record({}), 60_000, ctx())
    await store.patch('patched', patchOf(values), 60_000, ctx())
    expectSameData((await store.get('patched', ctx()))?.data, values)
    // And again through a merge that keeps them.
    await store.patch('patched', patchOf({ other: 1 }), 60_000, ctx())
    expectSameData((await store.get('patched', ctx()))?.data, { ...values, other: 1 })
  })

  it('never recreates a destroyed or expired row; none of them is read, counted or listed', async () => {
    const { store, table } = await fresh()
    const user = { id: 'u', key: 'uk', agent: null, label: null }
    await store.set('short', record({ a: 1 }, { handle: 'h', user }), 1, ctx())
    await store.set('gone', record({ a: 1 }), 60_000, ctx())
    await store.delete('gone', ctx())
    await new Promise((resolve) => setTimeout(resolve, 20))
    for (const key of ['short', 'gone']) {
      await expect(store.get(key, ctx())).resolves.toBeNull()
      await expect(store.patch(key, patchOf({ b: 2 }), 60_000, ctx())).resolves.toBe(false)
      await expect(store.touch(key, times, 60_000, ctx())).resolves.toBe(false)
    }
    await expect(store.count(ctx())).resolves.toBe(0)
    await expect(store.countUsers(ctx())).resolves.toBe(0)
    await expect(store.userEntries('uk', ctx())).resolves.toEqual([])
    await expect(store.getMany(['short', 'gone'], ctx())).resolves.toEqual([null, null])
    await expect(store.revokeUser('uk', ['short'], ctx())).resolves.toBe(0)
    expect(await row(table, 'gone')).toBeNull()
    // A regenerate from an expired row writes nothing.
    await store.set('old', record({}), 1, ctx())
    await new Promise((resolve) => setTimeout(resolve, 20))
    await expect(store.set('new', record({}), 60_000, ctx(), 'old')).resolves.toBe(false)
    expect(await row(table, 'new')).toBeNull()
  })

  it('regenerates atomically; a retry of a move that landed answers true; patch and touch never change the user', async () => {
    const { store, table } = await fresh()
    const ada = { id: 'ada', key: 'ada-key', agent: null, label: null }
    await store.set('old', record({ a: 1 }, { handle: 'h-old', user: ada }), 60_000, ctx())
    await expect(
      store.set('new', record({ a: 1 }, { handle: 'h-new', user: ada }), 60_000, ctx(), 'old'),
    ).resolves.toBe(true)
    expect(await row(table, 'old')).toBeNull()
    expect((await row(table, 'new'))?.handle).toBe('h-new')
    await expect(
      store.set('new', record({ a: 1 }, { handle: 'h-new', user: ada }), 60_000, ctx(), 'old'),
    ).resolves.toBe(true)
    await expect(store.set('other', record({}), 60_000, ctx(), 'old')).resolves.toBe(false)
    expect(await row(table, 'other')).toBeNull()

    await store.patch('new', patchOf({ b: 2 }), 60_000, ctx())
    await store.touch('new', { createdAt: 1, lastSeenAt: 2, expiresAt: 3 }, 60_000, ctx())
    const stored = await row(table, 'new')
    expect(stored?.user_key).toBe('ada-key')
    expect(JSON.parse(String(stored?.meta))).toEqual({
      createdAt: 1,
      lastSeenAt: 2,
      expiresAt: 3,
      handle: 'h-new',
      user: ada,
    })
    expect((await store.get('new', ctx()))?.data).toEqual({ a: 1, b: 2 })
  })

  it('a regenerate whose batch fails writes nothing: the old row stays, the new one never appears', async () => {
    const { table } = await fresh()
    // D1 runs a batch as one transaction: a statement failing after the move rolls the move back.
    const failing: D1Binding = {
      prepare: (query) => db.prepare(query),
      batch: (statements) => db.batch([...statements, db.prepare(`SELECT * FROM missing_${table}`)]),
    }
    const store = d1Store({ database: failing, table })
    await store.set('old', record({ a: 1 }), 60_000, ctx())
    await expect(store.set('new', record({ a: 2 }), 60_000, ctx(), 'old')).rejects.toThrow(/missing_/)
    expect(await row(table, 'new')).toBeNull()
    await expect(store.get('old', ctx())).resolves.toEqual(record({ a: 1 }))
  })

  it('writes nothing once the sessions layer has given up on the call (its signal aborted)', async () => {
    const { store, table } = await fresh()
    await store.set('k', record({ a: 1 }), 60_000, ctx())
    const controller = new AbortController()
    controller.abort(new Error('storeTimeout'))
    const aborted = { env: undefined, signal: controller.signal }
    await expect(store.patch('k', patchOf({ a: 2 }), 60_000, aborted)).rejects.toThrow('storeTimeout')
    await expect(store.touch('k', times, 60_000, aborted)).rejects.toThrow('storeTimeout')
    await expect(store.set('n', record({}), 60_000, aborted, 'k')).rejects.toThrow('storeTimeout')
    await expect(store.revokeUser('u', ['k'], aborted)).rejects.toThrow('storeTimeout')
    expect((await store.get('k', ctx()))?.data).toEqual({ a: 1 })
    expect(await row(table, 'n')).toBeNull()
  })

  it('revokes only the named sessions of the user, and counts distinct users', async () => {
    const { store } = await fresh()
    const user = (key: string) => ({ id: key, key, agent: null, label: null })
    await store.set('a1', record({}, { handle: 'ha1', user: user('A') }), 60_000, ctx())
    await store.set('a2', record({}, { handle: 'ha2', user: user('A') }), 60_000, ctx())
    await store.set('b1', record({}, { handle: 'hb1', user: user('B') }), 60_000, ctx())
    await store.set('anon', record({}), 60_000, ctx())
    await expect(store.countUsers(ctx())).resolves.toBe(2)
    const entries = await store.userEntries('A', ctx())
    expect(entries?.sort((x, y) => x.key.localeCompare(y.key))).toEqual([
      { key: 'a1', handle: 'ha1' },
      { key: 'a2', handle: 'ha2' },
    ])
    await expect(store.revokeUser('A', ['a1', 'b1', 'anon', 'missing'], ctx())).resolves.toBe(1)
    await expect(store.getMany(['a1', 'a2', 'b1', 'anon'], ctx())).resolves.toMatchObject([
      null,
      { data: {} },
      { data: {} },
      { data: {} },
    ])
  })
})

describe('d1Store: limits', () => {
  it('refuses a row over 2 000 000 bytes with ERR_TOO_LARGE before writing, and a merge that grows past it too', async () => {
    const { store, table } = await fresh()
    const big = 'é'.repeat(MAX_ROW_BYTES / 2)
    await expect(store.set('k', record({ big }), 60_000, ctx())).rejects.toSatisfy((error) =>
      isSessionError(error, 'ERR_TOO_LARGE'),
    )
    expect(await row(table, 'k')).toBeNull()

    await store.set('k', record({ half: 'x'.repeat(1_500_000) }), 60_000, ctx())
    await expect(store.patch('k', patchOf({ more: 'y'.repeat(1_500_000) }), 60_000, ctx())).rejects.toSatisfy(
      (error) => isSessionError(error, 'ERR_TOO_LARGE'),
    )
    expect(Object.keys((await store.get('k', ctx()))?.data ?? {})).toEqual(['half'])
  })

  it('through createSessions, a value too large is ERR_TOO_LARGE, not a store failure', async () => {
    const { store } = await fresh()
    const sessions = createSessions({ store, secrets: ['d1-test-secret-0123456789abcdefghijklmn'] })
    const session = await sessions.load(new Request('https://app.example/'))
    session.set('big', 'x'.repeat(MAX_ROW_BYTES + 1))
    await expect(sessions.commit(session, new Response())).rejects.toSatisfy((error) =>
      isSessionError(error, 'ERR_TOO_LARGE'),
    )
  })
})

describe('d1Store: migrate and prune', () => {
  it('migrates twice and concurrently, with the table and both indexes', async () => {
    const table = freshTable()
    const store = d1Store({ database: db, table })
    await Promise.all([store.migrate(), store.migrate(), store.migrate()])
    await store.migrate()
    const { results = [] } = await db
      .prepare(
        `SELECT name FROM sqlite_master WHERE tbl_name = ?1 AND name NOT LIKE 'sqlite_%' ORDER BY name`,
      )
      .bind(table)
      .all<{ name: string }>()
    expect(results.map((r) => r.name)).toEqual([table, `${table}_deadline`, `${table}_user`].sort())
    expect(d1Schema(table)).toContain(`CREATE TABLE IF NOT EXISTS ${table} (`)
  })

  it('prunes expired rows in bounded batches while live sessions keep changing', async () => {
    const { store, table } = await fresh()
    for (let i = 0; i < 25; i++) await store.set(`dead${i}`, record({ i }), 1, ctx())
    for (let i = 0; i < 5; i++) await store.set(`live${i}`, record({ i }), 600_000, ctx())
    await new Promise((resolve) => setTimeout(resolve, 20))
    const traffic = async () => {
      for (let round = 0; round < 5; round++) {
        await Promise.all(
          Array.from({ length: 5 }, (_, i) =>
            store.patch(`live${i}`, patchOf({ [`r${round}`]: round }), 600_000, ctx()),
          ),
        )
      }
    }
    const [pruned] = await Promise.all([
      (async () => {
        const counts: number[] = []
        for (let n = -1; n !== 0; ) {
          n = await store.prune({ limit: 10 })
          counts.push(n)
        }
        return counts
      })(),
      traffic(),
    ])
    expect(pruned).toEqual([10, 10, 5, 0])
    const left = await db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).first<{ n: number }>()
    expect(left?.n).toBe(5)
    for (let i = 0; i < 5; i++) {
      expect((await store.get(`live${i}`, ctx()))?.data).toEqual({ i, r0: 0, r1: 1, r2: 2, r3: 3, r4: 4 })
    }
  })

  it('reports migrate and prune failures as ERR_STORE with no SQL values; bad options as ERR_CONFIG', async () => {
    const failing: D1Binding = {
      prepare: () => {
        throw new Error('D1_ERROR: network connection lost')
      },
      batch: () => Promise.reject(new Error('D1_ERROR: network connection lost')),
    }
    const store = d1Store({ database: failing })
    for (const call of [() => store.migrate(), () => store.prune({ limit: 5 })]) {
      const error = await call().catch((e: unknown) => e)
      expect(isSessionError(error, 'ERR_STORE')).toBe(true)
      expect((error as Error).message).toMatch(/^d1Store\(\): (migrate|prune) failed$/)
    }
    await expect(store.prune({ limit: 0 })).rejects.toSatisfy((e) => isSessionError(e, 'ERR_CONFIG'))
    expect(() => d1Store({ database: db, table: 'bad name; DROP' })).toThrow(
      /table must be a plain identifier/,
    )
    expect(() => d1Store({ database: undefined as unknown as D1Binding })).toThrow(/`database` must be/)
    const byEnv = d1Store({ database: (env: { DB: D1Binding }) => env.DB })
    await expect(byEnv.get('k', ctx())).rejects.toSatisfy((e) => isSessionError(e, 'ERR_CONFIG'))
  })
})

/** `db`, counting round trips: every statement run on its own, and every batch, is one. */
function counted() {
  const trips: string[] = []
  type Statement = ReturnType<D1Binding['prepare']>
  const wrap = (statement: Statement, sql: string): Statement & { inner: Statement } => ({
    inner: statement,
    bind: (...values) => wrap(statement.bind(...values), sql),
    first: () => {
      trips.push(sql.trim().split(/\s+/)[0] ?? '')
      return statement.first()
    },
    all: () => {
      trips.push(sql.trim().split(/\s+/)[0] ?? '')
      return statement.all()
    },
    run: () => {
      trips.push(sql.trim().split(/\s+/)[0] ?? '')
      return statement.run()
    },
  })
  const database: D1Binding = {
    prepare: (sql) => wrap(db.prepare(sql), sql),
    batch: (statements) => {
      trips.push('BATCH')
      // D1 takes only its own statements: the wrapped ones' originals.
      return db.batch(statements.map((s) => (s as Statement & { inner: Statement }).inner))
    },
  }
  return { database, trips }
}

describe('d1Store: round trips through createSessions', () => {
  it('read-only 1, change 2, new 1, regenerate 2, touch 2, destroy 2, list 2, revoke one and all 2, countUsers 1', async () => {
    const table = freshTable()
    await d1Store({ database: db, table }).migrate()
    const { database, trips } = counted()
    let now = Date.now()
    const sessions = createSessions({
      store: d1Store({ database, table }),
      secrets: ['d1-test-secret-0123456789abcdefghijklmn'],
      touchInterval: 60,
      now: () => now,
    })
    const jar = new CookieJar()
    const step = async (work: (s: Awaited<ReturnType<typeof sessions.load>>) => void) => {
      trips.length = 0
      const s = await sessions.load(jar.request('https://app.example/', { headers: { 'user-agent': 'UA' } }))
      work(s)
      jar.update(await sessions.commit(s, new Response()))
      return [...trips]
    }
    expect(await step((s) => s.set('a', 1))).toEqual(['INSERT'])
    expect(await step((s) => s.get('a'))).toEqual(['SELECT'])
    expect(await step((s) => s.set('b', 2))).toEqual(['SELECT', 'UPDATE'])
    now += 61_000
    expect(await step(() => {})).toEqual(['SELECT', 'UPDATE'])
    expect(await step((s) => s.regenerate())).toEqual(['SELECT', 'BATCH'])
    expect(await step((s) => s.setUser('ada'))).toEqual(['SELECT', 'BATCH'])
    const other = new CookieJar()
    const s2 = await sessions.load(other.request())
    s2.setUser('ada')
    other.update(await sessions.commit(s2, new Response()))

    trips.length = 0
    const listed = await sessions.listUserSessions('ada')
    expect(listed).toHaveLength(2)
    expect(trips).toEqual(['SELECT', 'SELECT'])
    trips.length = 0
    await sessions.countUsers()
    expect(trips).toEqual(['SELECT'])
    trips.length = 0
    await expect(sessions.revokeUserSession('ada', listed[1]?.handle ?? '')).resolves.toBe(true)
    expect(trips).toEqual(['SELECT', 'DELETE'])
    trips.length = 0
    await sessions.revokeUserSessions('ada')
    expect(trips).toEqual(['SELECT', 'DELETE'])
    // Destroy: a fresh login, then its logout.
    const third = new CookieJar()
    const s3 = await sessions.load(third.request())
    s3.set('x', 1)
    third.update(await sessions.commit(s3, new Response()))
    trips.length = 0
    const s4 = await sessions.load(third.request())
    s4.destroy()
    await sessions.commit(s4, new Response())
    expect(trips).toEqual(['SELECT', 'DELETE'])
    await expect(d1Store({ database: db, table }).get(await storageKey(s4.id), ctx())).resolves.toBeNull()
  })
})
