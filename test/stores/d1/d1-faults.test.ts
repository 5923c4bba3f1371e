/**
 * @module The D1 store when D1 goes away: Miniflare's D1 (persisted to disk) stopped mid-run, then started again
 * on the same files. Every call in between is ERR_STORE; afterwards every committed session is intact and no
 * failed write landed. And a D1 call hanging past `storeTimeout` is ERR_STORE too.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSessions, isSessionError } from 'edge-session'
import { type D1Binding, d1Store } from 'edge-session/stores/d1'
import { Miniflare } from 'miniflare'
import { afterAll, describe, expect, it } from 'vitest'
import { CookieJar } from '../../support/jar.ts'

const SECRET = 'd1-faults-secret-0123456789abcdefghijklmno'
const SESSIONS = 12

const dir = mkdtempSync(join(tmpdir(), 'd1-faults-'))
let running: Miniflare | undefined

async function start(): Promise<D1Binding> {
  running = new Miniflare({
    modules: true,
    script: 'export default { fetch() { return new Response("") } }',
    compatibilityDate: '2026-04-26',
    d1Databases: ['DB'],
    d1Persist: dir,
  })
  return (await running.getD1Database('DB')) as unknown as D1Binding
}

async function stop(): Promise<void> {
  await running?.dispose()
  running = undefined
}

afterAll(async () => {
  await stop()
  rmSync(dir, { recursive: true, force: true })
})

type Data = { visits?: number }

describe('d1Store: D1 stopped mid-run', () => {
  it('fails with ERR_STORE while D1 is down, then finds every committed session intact', async () => {
    let current = await start()
    // The store follows whichever database is running, as a binding follows D1.
    const database: D1Binding = {
      prepare: (query) => current.prepare(query),
      batch: (statements) => current.batch(statements),
    }
    const store = d1Store({ database })
    await store.migrate()
    const sessions = createSessions<Data>({ store, secrets: [SECRET], storeTimeout: 5000 })
    const visit = async (jar: CookieJar, change = true) => {
      const s = await sessions.load(jar.request())
      if (change) s.set('visits', (s.get('visits') ?? 0) + 1)
      jar.update(await sessions.commit(s, new Response()))
      return s
    }
    const jars = Array.from({ length: SESSIONS }, () => new CookieJar())
    for (const [i, jar] of jars.entries()) for (let n = 0; n <= i; n++) await visit(jar)
    const ids = await Promise.all(jars.map(async (jar) => (await sessions.load(jar.request())).id))

    // Loaded before the stop, committed after it.
    const pending = await Promise.all(jars.slice(0, 4).map((jar) => sessions.load(jar.request())))
    for (const s of pending) s.set('visits', 1000)
    pending[1]?.regenerate()
    pending[2]?.destroy()
    pending[3]?.setUser('ada')
    await stop()

    for (const s of pending) {
      const error = await sessions.commit(s, new Response()).catch((e: unknown) => e)
      expect(isSessionError(error, 'ERR_STORE')).toBe(true)
    }
    for (const jar of [jars[5] as CookieJar, new CookieJar()]) {
      const error = await visit(jar.clone()).catch((e: unknown) => e)
      expect(isSessionError(error, 'ERR_STORE')).toBe(true)
    }
    await expect(sessions.count()).rejects.toSatisfy((e) => isSessionError(e, 'ERR_STORE'))
    await expect(store.prune()).rejects.toSatisfy((e) => isSessionError(e, 'ERR_STORE'))

    current = await start()
    for (const [i, jar] of jars.entries()) {
      const s = await sessions.load(jar.request())
      expect(s.isNew).toBe(false)
      expect(s.id).toBe(ids[i])
      expect(s.get('visits')).toBe(i + 1)
      expect(s.userId).toBeNull()
    }
    await expect(sessions.count()).resolves.toBe(SESSIONS)
    await expect(sessions.countUsers()).resolves.toBe(0)
    // And it takes writes again.
    expect((await visit(jars[0] as CookieJar)).get('visits')).toBe(2)
  })

  it('fails with ERR_STORE when a D1 call hangs past storeTimeout, writing nothing', async () => {
    const db = await start()
    const hanging: D1Binding = {
      prepare: (query) => {
        const statement = db.prepare(query)
        if (!/^\s*(UPDATE|INSERT)/.test(query)) return statement
        const held = { bind: () => held, run: () => new Promise<never>(() => {}) }
        return held as unknown as ReturnType<D1Binding['prepare']>
      },
      batch: () => new Promise(() => {}),
    }
    await d1Store({ database: db }).migrate()
    const good = createSessions<Data>({ store: d1Store({ database: db }), secrets: [SECRET] })
    const jar = new CookieJar()
    const first = await good.load(jar.request())
    first.set('visits', 1)
    jar.update(await good.commit(first, new Response()))

    const stuck = createSessions<Data>({
      store: d1Store({ database: hanging }),
      secrets: [SECRET],
      storeTimeout: 300,
    })
    const s = await stuck.load(jar.request())
    s.set('visits', 2)
    const error = await stuck.commit(s, new Response()).catch((e: unknown) => e)
    expect(isSessionError(error, 'ERR_STORE')).toBe(true)
    expect((await good.load(jar.request())).get('visits')).toBe(1)
    await stop()
  })
})
