/**
 * @module mysqlStore() at the store level, against a real MariaDB: the row layout, patches of many and tricky
 * keys, values the engine refuses, sizes past max_allowed_packet, migrate and prune, and round trips per request.
 */
import { createSessions, type SessionRecord, type StoreContext } from 'edge-session'
import { type MysqlPool, mysqlStore } from 'edge-session/stores/mysql'
import { createPool, type Pool } from 'mysql2/promise'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { storageKey } from '../../shared/conformance.ts'
import { CookieJar } from '../../support/jar.ts'
import { type MariaDbServer, startMariaDb } from '../../support/mariadb.ts'

let server: MariaDbServer
let pool: Pool

beforeAll(async () => {
  server = await startMariaDb()
  pool = createPool({ uri: server.url, connectionLimit: 8 })
})

afterAll(async () => {
  await pool?.end()
  await server?.stop()
})

const ctx = (): StoreContext => ({ env: undefined, signal: new AbortController().signal })
const times = { createdAt: 1, lastSeenAt: 1, expiresAt: 10_000_000 }
const record = (
  data: Record<string, unknown>,
  extra: Partial<SessionRecord['meta']> = {},
): SessionRecord => ({
  data: Object.assign(Object.create(null), data),
  meta: { ...times, ...extra },
})
const set = (data: Record<string, unknown>) => Object.assign(Object.create(null), data)

let tables = 0
async function fresh(options: { pool?: MysqlPool } = {}) {
  const table = `store_${++tables}`
  const store = mysqlStore({ pool: options.pool ?? pool, table })
  await store.migrate()
  return { store, table }
}

/** A pool that counts the statements sent through it. */
function counted(inner: Pool) {
  const counter = {
    statements: 0,
    pool: {
      query: (sql: string, values?: unknown) => {
        counter.statements++
        return inner.query(sql, values as never) as never
      },
    } as MysqlPool,
  }
  return counter
}

const TRICKY_KEYS = [
  'plain',
  '',
  'with "quotes"',
  "it's",
  'back\\slash',
  '\\"',
  'dot.ted',
  '$.root',
  'a[0]',
  '*',
  '**',
  '__proto__',
  'constructor',
  'new\nline',
  'tab\there',
  'nul\u0000char',
  'żółć 🍣',
  ' space ',
]

describe('mysqlStore: configuration', () => {
  it('refuses a table name that is not a plain identifier, and a bad prune limit', async () => {
    expect(() => mysqlStore({ pool, table: 'x; DROP TABLE y' })).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG' }),
    )
    const { store } = await fresh()
    await expect(store.prune({ limit: 0 })).rejects.toMatchObject({ code: 'ERR_CONFIG' })
    await expect(store.prune({ limit: 1.5 })).rejects.toMatchObject({ code: 'ERR_CONFIG' })
  })

  it('migrates twice and concurrently, leaving one working table', async () => {
    const table = `migrated_${++tables}`
    const store = mysqlStore({ pool, table })
    await Promise.all([store.migrate(), store.migrate(), store.migrate(), store.migrate()])
    await store.migrate()
    expect(await store.set('k', record({ a: 1 }), 60_000, ctx())).toBe(true)
    expect((await store.get('k', ctx()))?.data.a).toBe(1)
    const [indexes] = await pool.query<never[]>(`SHOW INDEX FROM ${table}`)
    const names = new Set((indexes as Array<{ Key_name: string }>).map((row) => row.Key_name))
    expect(names).toEqual(new Set(['PRIMARY', `${table}_deadline`, `${table}_user`]))
  })

  it('reports a failed migrate or prune as ERR_STORE without SQL values', async () => {
    const other = createPool({
      uri: `mysql://root@127.0.0.1:${server.port}/no_such_database`,
      connectionLimit: 1,
    })
    try {
      const store = mysqlStore({ pool: other, table: 'secret_table' })
      const error = await store.migrate().catch((e: unknown) => e)
      expect(error).toMatchObject({ name: 'SessionError', code: 'ERR_STORE' })
      expect((error as Error).message).not.toMatch(/secret_table|no_such_database|CREATE/)
      await expect(store.prune()).rejects.toMatchObject({ code: 'ERR_STORE' })
    } finally {
      await other.end()
    }
  })
})

describe('mysqlStore: rows', () => {
  it('keeps keys case-sensitive: two keys differing in case are two sessions', async () => {
    const { store } = await fresh()
    await store.set('AbC', record({ who: 'upper' }), 60_000, ctx())
    await store.set('abc', record({ who: 'lower' }), 60_000, ctx())
    expect((await store.get('AbC', ctx()))?.data.who).toBe('upper')
    expect((await store.get('abc', ctx()))?.data.who).toBe('lower')
    expect(await store.get('ABC', ctx())).toBeNull()
  })

  it('patches 200 keys at once, then deletes them, in one statement each', async () => {
    const { store } = await fresh()
    await store.set('k', record({ keep: 'me' }), 60_000, ctx())
    const many = set(
      Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`key-${i}`, { i, s: `v${i}` }])),
    )
    const flash = Object.keys(many).filter((_, i) => i % 2 === 0)
    expect(await store.patch('k', { set: many, delete: [], flash, meta: times }, 60_000, ctx())).toBe(true)
    const got = await store.get('k', ctx())
    expect({ ...got?.data }).toEqual({ keep: 'me', ...many })
    expect(new Set(got?.meta.flash)).toEqual(new Set(flash))
    const names = Object.keys(many)
    expect(
      await store.patch('k', { set: set({}), delete: names, flash: [], meta: times }, 60_000, ctx()),
    ).toBe(true)
    const after = await store.get('k', ctx())
    expect({ ...after?.data }).toEqual({ keep: 'me' })
    expect(after?.meta.flash).toBeUndefined()
  })

  it('sets, flashes and deletes every tricky key on the patch path, and round-trips them on the whole-record path', async () => {
    const { store } = await fresh()
    const data = set(Object.fromEntries(TRICKY_KEYS.map((key, i) => [key, `value ${i} of ${key}`])))
    await store.set('whole', record(data, { flash: ['__proto__', ''] }), 60_000, ctx())
    const whole = await store.get('whole', ctx())
    expect(Object.keys(whole?.data ?? {}).sort()).toEqual([...TRICKY_KEYS].sort())
    for (const key of TRICKY_KEYS) expect(whole?.data[key]).toBe(data[key])
    expect(new Set(whole?.meta.flash)).toEqual(new Set(['__proto__', '']))

    await store.set('patched', record({ other: 1 }), 60_000, ctx())
    await store.patch('patched', { set: data, delete: [], flash: TRICKY_KEYS, meta: times }, 60_000, ctx())
    const patched = await store.get('patched', ctx())
    expect(Object.keys(patched?.data ?? {}).sort()).toEqual([...TRICKY_KEYS, 'other'].sort())
    for (const key of TRICKY_KEYS) expect(patched?.data[key]).toBe(data[key])
    expect(new Set(patched?.meta.flash)).toEqual(new Set(TRICKY_KEYS))
    // Each key removed alone: no other key (a prefix, an escape of it) goes with it.
    for (const [i, key] of TRICKY_KEYS.entries()) {
      await store.patch('patched', { set: set({}), delete: [key], flash: [], meta: times }, 60_000, ctx())
      const left = await store.get('patched', ctx())
      expect(Object.keys(left?.data ?? {}).sort()).toEqual([...TRICKY_KEYS.slice(i + 1), 'other'].sort())
      expect(new Set(left?.meta.flash)).toEqual(new Set(TRICKY_KEYS.slice(i + 1)))
    }
  })

  it('round-trips NUL, U+2028, JSON-looking strings and large integers; refuses lone surrogates with ERR_SERIALIZE, writing nothing', async () => {
    const { store } = await fresh()
    const values = {
      nul: 'a\u0000b',
      separator: '\u2028\u2029',
      json: '{"a":1}',
      pair: '🍣',
      big: 2 ** 53 - 1,
      negative: -(2 ** 53 - 1),
      nested: { a: [1, { b: null }], c: 'x' },
      backslash: '\\ud800',
    }
    await store.set('k', record(values), 60_000, ctx())
    expect({ ...(await store.get('k', ctx()))?.data }).toEqual(values)
    await store.patch('k', { set: set({ again: values }), delete: [], flash: [], meta: times }, 60_000, ctx())
    expect((await store.get('k', ctx()))?.data.again).toEqual(values)

    const lone = set({ bad: 'x\ud800y' })
    await expect(
      store.patch('k', { set: lone, delete: [], flash: [], meta: times }, 60_000, ctx()),
    ).rejects.toMatchObject({ code: 'ERR_SERIALIZE' })
    await expect(store.set('k2', record({ bad: '\udc00' }), 60_000, ctx())).rejects.toMatchObject({
      code: 'ERR_SERIALIZE',
    })
    await expect(
      store.patch('k', { set: set({ ['\udfff']: 1 }), delete: [], flash: [], meta: times }, 60_000, ctx()),
    ).rejects.toMatchObject({ code: 'ERR_SERIALIZE' })
    expect(await store.get('k2', ctx())).toBeNull()
    expect(Object.keys((await store.get('k', ctx()))?.data ?? {}).sort()).toEqual(
      [...Object.keys(values), 'again'].sort(),
    )
  })

  it('reads a damaged row as missing, and a whole-record write replaces it', async () => {
    const { store, table } = await fresh()
    const deadline = "(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) DIV 1000) + 60000"
    await pool.query(
      `INSERT INTO ${table} (\`key\`, data, flash, meta, deadline) VALUES
       ('array', '[1]', '{}', '{"createdAt":1,"lastSeenAt":1,"expiresAt":1}', ${deadline}),
       ('nometa', '{"a":1}', '{}', '{"createdAt":"x"}', ${deadline})`,
    )
    expect(await store.get('array', ctx())).toBeNull()
    expect(await store.get('nometa', ctx())).toBeNull()
    expect(await store.getMany?.(['array', 'nometa'], ctx())).toEqual([null, null])
    await store.set('array', record({ b: 2 }), 60_000, ctx())
    expect({ ...(await store.get('array', ctx()))?.data }).toEqual({ b: 2 })
  })

  it('never recreates a destroyed or expired row by a patch or a touch', async () => {
    const { store } = await fresh()
    await store.set('gone', record({ a: 1 }), 60_000, ctx())
    await store.delete('gone', ctx())
    expect(
      await store.patch('gone', { set: set({ b: 2 }), delete: [], flash: [], meta: times }, 60_000, ctx()),
    ).toBe(false)
    expect(await store.touch?.('gone', times, 60_000, ctx())).toBe(false)
    await store.set('short', record({ a: 1 }), 1, ctx())
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(await store.get('short', ctx())).toBeNull()
    expect(
      await store.patch('short', { set: set({ b: 2 }), delete: [], flash: [], meta: times }, 60_000, ctx()),
    ).toBe(false)
    expect(await store.touch?.('short', times, 60_000, ctx())).toBe(false)
    expect(await store.get('short', ctx())).toBeNull()
    expect(await store.count()).toBe(0)
  })

  it('regenerates atomically: nothing written after a concurrent destroy; a retry of a landed move answers true', async () => {
    const { store, table } = await fresh()
    await store.set('old', record({ a: 1 }), 60_000, ctx())
    await store.delete('old', ctx())
    expect(await store.set('new', record({ a: 1 }), 60_000, ctx(), 'old')).toBe(false)
    expect(await store.get('new', ctx())).toBeNull()

    await store.set('old2', record({ a: 2 }), 60_000, ctx())
    expect(await store.set('new2', record({ a: 2 }), 60_000, ctx(), 'old2')).toBe(true)
    expect(await store.set('new2', record({ a: 2 }), 60_000, ctx(), 'old2')).toBe(true)
    const [rows] = await pool.query<never[]>(`SELECT \`key\` FROM ${table} ORDER BY \`key\``)
    expect((rows as Array<{ key: string }>).map((row) => row.key)).toEqual(['new2'])
  })

  it('keeps the row layout: user_key and handle columns from the record, kept by patches and touches', async () => {
    const { store, table } = await fresh()
    const user = { id: 'ada', key: 'user-key-1', agent: null, label: 'laptop' }
    await store.set('k', record({ a: 1 }, { handle: 'h1', user }), 60_000, ctx())
    await store.patch('k', { set: set({ b: 2 }), delete: ['a'], flash: ['b'], meta: times }, 60_000, ctx())
    await store.touch?.('k', { ...times, lastSeenAt: 5 }, 60_000, ctx())
    const [rows] = await pool.query<never[]>(`SELECT * FROM ${table}`)
    const [row] = rows as Array<Record<string, unknown>>
    expect(row).toMatchObject({
      key: 'k',
      user_key: 'user-key-1',
      handle: 'h1',
      data: { b: 2 },
      flash: { b: 1 },
    })
    expect(row?.meta).toEqual({ ...times, lastSeenAt: 5, handle: 'h1', user })
  })
})

describe('mysqlStore: prune', () => {
  it('deletes expired rows in bounded batches while live sessions keep being written', async () => {
    const { store, table } = await fresh()
    const values = Array.from(
      { length: 250 },
      (_, i) => `('x${i}', '{}', '{}', '{"createdAt":1,"lastSeenAt":1,"expiresAt":1}', 0)`,
    )
    await pool.query(
      `INSERT INTO ${table} (\`key\`, data, flash, meta, deadline) VALUES ${values.join(', ')}`,
    )
    let writing = true
    let written = 0
    const traffic = (async () => {
      while (writing) {
        const key = `live-${written++}`
        await store.set(key, record({ n: written }), 60_000, ctx())
        await store.patch(
          key,
          { set: set({ more: true }), delete: [], flash: [], meta: times },
          60_000,
          ctx(),
        )
      }
    })()
    const batches: number[] = []
    for (;;) {
      const deleted = await store.prune({ limit: 100 })
      batches.push(deleted)
      if (deleted === 0) break
    }
    writing = false
    await traffic
    expect(batches).toEqual([100, 100, 50, 0])
    expect(await store.count()).toBe(written)
    for (let i = 0; i < written; i++) expect((await store.get(`live-${i}`, ctx()))?.data.more).toBe(true)
  })
})

describe('mysqlStore: round trips through the sessions API', () => {
  it('spends one statement per store call: read 1, change 2, new 1, regenerate 2, destroy 2, touch 2, list 2, revoke 2, countUsers 1', async () => {
    const counter = counted(pool)
    const { store } = await fresh({ pool: counter.pool })
    const sessions = createSessions<Record<string, unknown>>({
      store,
      secrets: ['round-trip-secret-0123456789abcdefghijklmnop'],
    })
    const jar = new CookieJar()
    const step = async (work: (s: Awaited<ReturnType<typeof sessions.load>>) => void | Promise<void>) => {
      counter.statements = 0
      const s = await sessions.load(jar.request())
      await work(s)
      jar.update(await sessions.commit(s, new Response()))
      return counter.statements
    }
    expect(await step((s) => void s.set('a', 1))).toBe(1)
    expect(await step(() => {})).toBe(1)
    expect(await step((s) => void s.set('b', 2))).toBe(2)
    expect(await step((s) => void s.touch())).toBe(2)
    expect(await step((s) => void s.setUser('ada'))).toBe(2)
    expect(await step((s) => void s.regenerate())).toBe(2)
    const other = new CookieJar()
    const s2 = await sessions.load(other.request())
    s2.setUser('ada')
    other.update(await sessions.commit(s2, new Response()))

    counter.statements = 0
    const listed = await sessions.listUserSessions('ada')
    expect(listed).toHaveLength(2)
    expect(counter.statements).toBe(2)
    counter.statements = 0
    expect(await sessions.countUsers()).toBe(1)
    expect(counter.statements).toBe(1)
    counter.statements = 0
    expect(await sessions.revokeUserSession('ada', s2.handle)).toBe(true)
    expect(counter.statements).toBe(2)
    expect(await step((s) => s.destroy())).toBe(2)
    const s3 = await sessions.load(new Request('https://app.example/'))
    s3.setUser('ada')
    await sessions.commit(s3, new Response())
    counter.statements = 0
    expect(await sessions.revokeUserSessions('ada')).toBe(1)
    expect(counter.statements).toBe(2)
    expect(await store.get(await storageKey(s3.id), ctx())).toBeNull()
  })
})

describe('mysqlStore: the record a write answers (returnRecord)', () => {
  const withRecord = (): StoreContext => ({ ...ctx(), returnRecord: true })

  it('answers the merged record from one statement on MariaDB, for a patch and a touch', async () => {
    const counter = counted(pool)
    const { store } = await fresh({ pool: counter.pool })
    await store.set('k', record({ a: 1, b: 2 }, { flash: ['b'] }), 60_000, ctx())
    // Another writer's change after this request's load.
    expect(
      await store.patch('k', { set: set({ c: 3 }), delete: [], flash: [], meta: times }, 60_000, ctx()),
    ).toBe(true)
    counter.statements = 0
    const later = { ...times, lastSeenAt: 5 }
    const patched = await store.patch(
      'k',
      { set: set({ a: 9 }), delete: [], flash: [], meta: later },
      60_000,
      withRecord(),
    )
    expect(patched).toEqual(record({ a: 9, b: 2, c: 3 }, { ...later, flash: ['b'] }))
    expect(await store.touch?.('k', { ...later, lastSeenAt: 7 }, 60_000, withRecord())).toEqual(
      record({ a: 9, b: 2, c: 3 }, { ...later, lastSeenAt: 7, flash: ['b'] }),
    )
    expect(counter.statements).toBe(2)
    expect(
      await store.patch(
        'gone',
        { set: set({ a: 1 }), delete: [], flash: [], meta: times },
        60_000,
        withRecord(),
      ),
    ).toBe(false)
    expect(await store.get('gone', ctx())).toBeNull()
  })

  it('merges concurrent patches that answer the record, with no write lost and each answer holding its own key', async () => {
    const { store } = await fresh()
    await store.set('k', record({ base: 0 }), 60_000, ctx())
    const answers = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        store.patch(
          'k',
          { set: set({ [`k${i}`]: i }), delete: [], flash: [], meta: times },
          60_000,
          withRecord(),
        ),
      ),
    )
    answers.forEach((answer, i) => {
      expect((answer as SessionRecord).data[`k${i}`]).toBe(i)
    })
    const stored = await store.get('k', ctx())
    expect(Object.keys(stored?.data ?? {})).toHaveLength(25)
  })

  it('answers true on a server without RETURNING (MySQL 8), by the plain UPDATE, and asks only once', async () => {
    // MariaDB standing in for MySQL 8: a statement with RETURNING is refused as MySQL refuses it (errno 1064).
    const sent: string[] = []
    const mysqlLike: MysqlPool = {
      query: (sql: string, values?: unknown) => {
        sent.push(sql)
        if (/RETURNING/.test(sql)) {
          return Promise.reject(
            Object.assign(new Error('You have an error in your SQL syntax'), {
              errno: 1064,
              sqlState: '42000',
            }),
          )
        }
        return pool.query(sql, values as never) as never
      },
    }
    const { store } = await fresh({ pool: mysqlLike })
    await store.set('k', record({ a: 1 }), 60_000, ctx())
    sent.length = 0
    const patch = { set: set({ b: 2 }), delete: [], flash: [], meta: times }
    expect(await store.patch('k', patch, 60_000, withRecord())).toBe(true)
    expect(await store.touch?.('k', times, 60_000, withRecord())).toBe(true)
    expect(await store.patch('gone', patch, 60_000, withRecord())).toBe(false)
    expect(sent.filter((sql) => /RETURNING/.test(sql))).toHaveLength(1)
    expect(sent).toHaveLength(4)
    expect(await store.get('k', ctx())).toEqual(record({ a: 1, b: 2 }))
  })
})

describe('mysqlStore: max_allowed_packet', () => {
  let small: MariaDbServer
  let smallPool: Pool
  beforeAll(async () => {
    small = await startMariaDb({ args: ['--max-allowed-packet=1M'] })
    smallPool = createPool({ uri: small.url, connectionLimit: 2 })
  })
  afterAll(async () => {
    await smallPool?.end()
    await small?.stop()
  })

  it('answers ERR_TOO_LARGE for a write past it, on both paths, and keeps the session as it was', async () => {
    const store = mysqlStore({ pool: smallPool, table: 'small' })
    await store.migrate()
    const big = 'x'.repeat(2 * 1024 * 1024)
    await expect(store.set('k', record({ big }), 60_000, ctx())).rejects.toMatchObject({
      code: 'ERR_TOO_LARGE',
    })
    await store.set('k', record({ a: 1 }), 60_000, ctx())
    await expect(
      store.patch('k', { set: set({ big }), delete: [], flash: [], meta: times }, 60_000, ctx()),
    ).rejects.toMatchObject({ code: 'ERR_TOO_LARGE' })
    // Each statement fits; the merged document, past the limit, is still kept and read back whole.
    const half = 'y'.repeat(600 * 1024)
    await store.patch('k', { set: set({ one: half }), delete: [], flash: [], meta: times }, 60_000, ctx())
    await store.patch('k', { set: set({ two: half }), delete: [], flash: [], meta: times }, 60_000, ctx())
    const got = await store.get('k', ctx())
    expect(Object.keys(got?.data ?? {}).sort()).toEqual(['a', 'one', 'two'])
    expect(got?.data.two).toBe(half)
  })
})

describe('mysqlStore: locks', () => {
  it('sends a statement InnoDB chose as a deadlock victim (rolled back whole) again, and the patch lands', async () => {
    let injected = 0
    const victim: MysqlPool = {
      query: (sql: string, values?: unknown) => {
        if (sql.startsWith('UPDATE') && injected < 2) {
          injected++
          const error = Object.assign(
            new Error('Deadlock found when trying to get lock; try restarting transaction'),
            {
              code: 'ER_LOCK_DEADLOCK',
              errno: 1213,
              sqlState: '40001',
            },
          )
          return Promise.reject(error)
        }
        return pool.query(sql, values as never) as never
      },
    }
    const { store } = await fresh({ pool: victim })
    await store.set('k', record({ a: 1 }), 60_000, ctx())
    expect(
      await store.patch('k', { set: set({ b: 2 }), delete: [], flash: [], meta: times }, 60_000, ctx()),
    ).toBe(true)
    expect(injected).toBe(2)
    expect({ ...(await store.get('k', ctx()))?.data }).toEqual({ a: 1, b: 2 })
  })

  it('sends a write that met a connection error once more, unless the sessions layer has given up on it', async () => {
    let updates = 0
    let fail = true
    const dropping: MysqlPool = {
      query: (sql: string, values?: unknown) => {
        if (sql.startsWith('UPDATE')) {
          updates++
          if (fail) {
            fail = false
            return Promise.reject(
              Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET', errno: -104 }),
            )
          }
        }
        return pool.query(sql, values as never) as never
      },
    }
    const { store } = await fresh({ pool: dropping })
    await store.set('k', record({ a: 1 }), 60_000, ctx())
    expect(
      await store.patch('k', { set: set({ b: 2 }), delete: [], flash: [], meta: times }, 60_000, ctx()),
    ).toBe(true)
    expect(updates).toBe(2)
    expect({ ...(await store.get('k', ctx()))?.data }).toEqual({ a: 1, b: 2 })

    updates = 0
    fail = true
    const aborted = new AbortController()
    aborted.abort()
    const gaveUp = { env: undefined, signal: aborted.signal }
    await expect(
      store.patch('k', { set: set({ c: 3 }), delete: [], flash: [], meta: times }, 60_000, gaveUp),
    ).rejects.toMatchObject({ code: 'ERR_STORE' })
    expect(updates).toBe(1)
    expect({ ...(await store.get('k', ctx()))?.data }).toEqual({ a: 1, b: 2 })
  })

  it('fails a commit held by another transaction past storeTimeout with ERR_STORE; the write is whole or absent after', async () => {
    const { store, table } = await fresh()
    const sessions = createSessions<Record<string, unknown>>({
      store,
      secrets: ['lock-secret-0123456789abcdefghijklmnopqrstu'],
      storeTimeout: 500,
    })
    const jar = new CookieJar()
    const first = await sessions.load(jar.request())
    first.set('a', 1)
    jar.update(await sessions.commit(first, new Response()))
    const key = await storageKey(first.id)

    const holder = await pool.getConnection()
    try {
      await holder.query('BEGIN')
      await holder.query(`SELECT * FROM ${table} WHERE \`key\` = ? FOR UPDATE`, [key])
      const s = await sessions.load(jar.request())
      s.set('b', 2)
      s.set('c', 3)
      const started = Date.now()
      await expect(sessions.commit(s, new Response())).rejects.toMatchObject({ code: 'ERR_STORE' })
      expect(Date.now() - started).toBeLessThan(2_000)
    } finally {
      await holder.query('ROLLBACK')
      holder.release()
    }
    // The statement the sessions layer gave up on may still run once the lock is released: all of it, or none.
    await new Promise((resolve) => setTimeout(resolve, 200))
    const data = { ...(await store.get(key, ctx()))?.data }
    expect([{ a: 1 }, { a: 1, b: 2, c: 3 }]).toContainEqual(data)
  })
})
