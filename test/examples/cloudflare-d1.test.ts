/**
 * @module The Cloudflare example with SESSION_STORE=d1: bundled by Wrangler from wrangler.toml, served by Miniflare
 * (workerd) with its D1 database persisted on disk, driven from Node as a browser would. The Worker creates the
 * table itself on its first request, and its Cron Trigger prunes expired rows.
 */
import type { Miniflare } from 'miniflare'
import { describe, expect, it } from 'vitest'
import { Browser } from '../support/examples/miniflare-browser.ts'
import { persistedWorker } from '../support/examples/persisted-worker.ts'

const example = persistedWorker('d1')

async function rows(mf: Miniflare) {
  const db = await mf.getD1Database('DB')
  const { results } = await db
    .prepare('SELECT key, user_key, handle, deadline FROM sessions ORDER BY key')
    .all<{ key: string; user_key: string | null; handle: string | null; deadline: number }>()
  return results
}

describe('the Cloudflare example Worker with SESSION_STORE=d1', () => {
  it('creates the table on its first request and keeps sessions in D1, not KV', async () => {
    const mf = await example.start(await example.state())
    const db = await mf.getD1Database('DB')
    const before = await db.prepare("SELECT name FROM sqlite_master WHERE name = 'sessions'").all()
    expect(before.results).toEqual([])

    const browser = new Browser()
    await expect(browser.session(mf)).resolves.toEqual({ visits: 1, user: null })
    await expect(browser.session(mf)).resolves.toEqual({ visits: 2, user: null })
    expect(await (await browser.fetch(mf, '/')).text()).toContain('Cloudflare D1')
    const [row, ...others] = await rows(mf)
    expect(others).toEqual([])
    expect(row?.key).toBe(browser.key)
    expect(row?.user_key).toBeNull()
    const kv = await mf.getKVNamespace('SESSIONS')
    expect((await kv.list()).keys).toEqual([])
  })

  it('continues one session across two instances sharing the D1 files; login moves the row, logout deletes it', async () => {
    const persist = await example.state()
    const edgeA = await example.start(persist)
    const edgeB = await example.start(persist)
    const browser = new Browser()
    await expect(browser.session(edgeA)).resolves.toEqual({ visits: 1, user: null })
    await expect(browser.session(edgeB)).resolves.toEqual({ visits: 2, user: null })
    const oldKey = browser.key

    const login = await browser.fetch(edgeA, '/api/login', { method: 'POST', json: { user: 'ada' } })
    expect(await login.json()).toEqual({ user: 'ada' })
    await expect(browser.session(edgeB)).resolves.toEqual({ visits: 3, user: 'ada' })
    const [row, ...others] = await rows(edgeB)
    expect(others).toEqual([])
    expect(row?.key).toBe(browser.key)
    expect(row?.key).not.toBe(oldKey)
    // Named by a hash: the user id is in no column but the record's own metadata.
    expect(row?.user_key).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(row?.user_key).not.toContain('ada')
    expect(row?.handle).toMatch(/^[A-Za-z0-9_-]{22}$/)

    const logout = await browser.fetch(edgeB, '/api/logout', { method: 'POST', json: {} })
    expect(await logout.json()).toEqual({ user: null })
    expect(browser.cookie).toBeUndefined()
    expect(await rows(edgeA)).toEqual([])
  })

  it('prunes expired rows from its Cron Trigger, leaving live sessions', async () => {
    const mf = await example.start(await example.state())
    const browser = new Browser()
    await browser.session(mf)
    const db = await mf.getD1Database('DB')
    await db
      .prepare(
        "INSERT INTO sessions (key, data, flash, meta, deadline) VALUES ('expired', '{}', '{}', '{}', 0)",
      )
      .run()
    expect(await rows(mf)).toHaveLength(2)

    const worker = await mf.getWorker()
    await worker.scheduled({ cron: '*/10 * * * *' })
    expect((await rows(mf)).map((row) => row.key)).toEqual([browser.key])
    await expect(browser.session(mf)).resolves.toEqual({ visits: 2, user: null })
  })
})
