/**
 * @module The Cloudflare example with SESSION_STORE=durable-object: bundled by Wrangler from wrangler.toml (which
 * binds `SESSION_OBJECTS` to the Worker's own `SessionObject`), served by Miniflare (workerd) with the objects'
 * storage persisted on disk, driven from Node as a browser would, and restarted on that persisted state.
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
  scratch = await mkdtemp(join(root, '.tmp', 'cf-do-example-'))
  bundle = await bundleWorker()
  script = bundle.script
}, 120_000)

afterAll(async () => {
  await Promise.allSettled(running.map((mf) => mf.dispose()))
  await bundle?.remove()
  if (scratch) await rm(scratch, { recursive: true, force: true })
})

/**
 * One instance with wrangler.toml's bindings, the objects kept in `persist`. One at a time on a folder: two
 * workerd processes on one SQLite file are two objects, not one (the second fails with SQLITE_BUSY).
 */
async function startInstance(persist: string) {
  Object.assign(process.env, wranglerEnv)
  const { workerOptions } = unstable_getMiniflareWorkerOptions(join(root, 'wrangler.toml'))
  expect(workerOptions.durableObjects).toEqual({
    SESSION_OBJECTS: { className: 'SessionObject', useSQLite: true },
  })
  const mf = new Miniflare({
    name: 'edge-session-example',
    compatibilityDate: workerOptions.compatibilityDate,
    compatibilityFlags: workerOptions.compatibilityFlags,
    kvNamespaces: workerOptions.kvNamespaces,
    d1Databases: workerOptions.d1Databases,
    durableObjects: workerOptions.durableObjects,
    modules: true,
    scriptPath: script,
    // Module names are paths relative to this root; workerd refuses names that climb out of it with `..`.
    modulesRoot: dirname(script),
    bindings: { SESSION_SECRET: SECRET, SESSION_STORE: 'durable-object' },
    kvPersist: persist,
    d1Persist: persist,
    durableObjectsPersist: persist,
  })
  running.push(mf)
  await mf.ready
  return mf
}

async function stop(mf: Miniflare) {
  running.splice(running.indexOf(mf), 1)
  await mf.dispose()
}

/** Whether the KV namespace holds anything: with this store, it must not. */
async function kvIsEmpty(mf: Miniflare) {
  const kv = await mf.getKVNamespace('SESSIONS')
  return (await kv.list()).keys.length === 0
}

describe('the Cloudflare example Worker with SESSION_STORE=durable-object', () => {
  it('keeps a session in Durable Objects, and finds it again after a restart on the persisted state', async () => {
    const persist = await mkdtemp(join(scratch, 'state-'))
    const first = await startInstance(persist)
    const browser = new Browser()
    await expect(browser.session(first)).resolves.toEqual({ visits: 1, user: null })
    const login = await browser.fetch(first, '/api/login', { method: 'POST', json: { user: 'ada' } })
    expect(await login.json()).toEqual({ user: 'ada' })
    await expect(browser.session(first)).resolves.toEqual({ visits: 2, user: 'ada' })
    expect(await (await browser.fetch(first, '/')).text()).toContain('Cloudflare Durable Objects')
    expect(await kvIsEmpty(first)).toBe(true)
    const cookie = browser.cookie
    await stop(first)

    // A new workerd process on the same folder: the objects, their records and the user's index are all there.
    const second = await startInstance(persist)
    expect(browser.cookie).toEqual(cookie)
    // Three visits before (the page view counted one), this the fourth.
    await expect(browser.session(second)).resolves.toEqual({ visits: 4, user: 'ada' })
    const devices = await browser.fetch(second, '/api/sessions')
    expect(devices.status).toBe(200)
    expect(JSON.stringify(await devices.json())).toContain('"current":true')
  })

  it('logs out for good: a copy of the cookie opens nothing, in this instance or after a restart', async () => {
    const persist = await mkdtemp(join(scratch, 'state-'))
    const mf = await startInstance(persist)
    const browser = new Browser()
    await browser.fetch(mf, '/api/login', { method: 'POST', json: { user: 'ada' } })
    const loggedIn = browser.cookie
    const logout = await browser.fetch(mf, '/api/logout', { method: 'POST', json: {} })
    expect(await logout.json()).toEqual({ user: null })
    expect(browser.setCookies[0]).toMatch(/^sid=;.*Max-Age=0/i)

    const copy = new Browser()
    copy.cookie = loggedIn
    await expect(copy.session(mf)).resolves.toEqual({ visits: 1, user: null })
    await stop(mf)
    const again = await startInstance(persist)
    const other = new Browser()
    other.cookie = loggedIn
    await expect(other.session(again)).resolves.toEqual({ visits: 1, user: null })
  })

  it("revokes another device's session at once: its next request starts afresh", async () => {
    const mf = await startInstance(await mkdtemp(join(scratch, 'state-')))
    const laptop = new Browser()
    const phone = new Browser()
    for (const device of [laptop, phone]) {
      await device.fetch(mf, '/api/login', { method: 'POST', json: { user: 'ada' } })
    }
    await expect(phone.session(mf)).resolves.toMatchObject({ user: 'ada' })
    const revoked = await laptop.fetch(mf, '/api/sessions/revoke-others', { method: 'POST', json: {} })
    expect(revoked.status).toBe(200)
    await expect(phone.session(mf)).resolves.toEqual({ visits: 1, user: null })
    await expect(laptop.session(mf)).resolves.toMatchObject({ user: 'ada' })
  })
})
