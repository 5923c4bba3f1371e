/**
 * @module The Cloudflare example with SESSION_STORE=d1: bundled by Wrangler from wrangler.toml, served by Miniflare
 * (workerd) with its D1 database persisted on disk, driven from Node as a browser would. The Worker creates the
 * table itself on its first request, and its Cron Trigger prunes expired rows.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Miniflare } from 'miniflare'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { unstable_getMiniflareWorkerOptions } from 'wrangler'
import { Browser } from '../support/examples/miniflare-browser.ts'
import { bundleWorker } from '../support/examples/workers.ts'

const root = fileURLToPath(new URL('../../', import.meta.url))
const wranglerEnv = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' }
const SECRET = 'example-test-secret-of-at-least-32-characters'

let scratch: string
let script: string
let bundle: Awaited<ReturnType<typeof bundleWorker>> | undefined
const running: Miniflare[] = []

beforeAll(async () => {
  // Inside the project (.tmp/ is git-ignored): workerd refuses persist paths that climb out with `..`.
  await mkdir(join(root, '.tmp'), { recursive: true })
  scratch = await mkdtemp(join(root, '.tmp', 'cf-d1-example-'))
  bundle = await bundleWorker()
  script = bundle.script
}, 120_000)

afterAll(async () => {
  await Promise.allSettled(running.map((mf) => mf.dispose()))
  await bundle?.remove()
  if (scratch) await rm(scratch, { recursive: true, force: true })
})

/** One edge instance with wrangler.toml's bindings, D1 persisted in `persist` (shared when given the same dir). */
async function startInstance(persist: string) {
  Object.assign(process.env, wranglerEnv)
  const { workerOptions } = unstable_getMiniflareWorkerOptions(join(root, 'wrangler.toml'))
  const mf = new Miniflare({
    name: 'edge-session-example',
    compatibilityDate: workerOptions.compatibilityDate,
    compatibilityFlags: workerOptions.compatibilityFlags,
    kvNamespaces: workerOptions.kvNamespaces,
    d1Databases: workerOptions.d1Databases,
    modules: true,
    scriptPath: script,
    // Module names are paths relative to this root; workerd refuses names that climb out of it with `..`.
    modulesRoot: dirname(script),
    bindings: { SESSION_SECRET: SECRET, SESSION_STORE: 'd1' },
    kvPersist: persist,
    d1Persist: persist,
  })
  running.push(mf)
  await mf.ready
  return mf
}

async function rows(mf: Miniflare) {
  const db = await mf.getD1Database('DB')
  const { results } = await db
    .prepare('SELECT key, user_key, handle, deadline FROM sessions ORDER BY key')
    .all<{ key: string; user_key: string | null; handle: string | null; deadline: number }>()
  return results
}

describe('the Cloudflare example Worker with SESSION_STORE=d1', () => {
  it('creates the table on its first request and keeps sessions in D1, not KV', async () => {
    const mf = await startInstance(await mkdtemp(join(scratch, 'state-')))
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
    const persist = await mkdtemp(join(scratch, 'state-'))
    const edgeA = await startInstance(persist)
    const edgeB = await startInstance(persist)
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
    const mf = await startInstance(await mkdtemp(join(scratch, 'state-')))
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
