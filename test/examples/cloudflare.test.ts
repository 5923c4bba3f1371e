/**
 * @module The Cloudflare example end to end: bundled by Wrangler from wrangler.toml, served by Miniflare (workerd,
 * without nodejs_compat) with its KV persisted on disk, driven from Node as a browser would. And every
 * runtime-neutral entry point, bundled the same way, running in workerd with no Node API at all.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Miniflare } from 'miniflare'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { unstable_getMiniflareWorkerOptions } from 'wrangler'
import { Browser } from '../support/examples/miniflare-browser.ts'
import { startLocalUpstash } from '../support/local-upstash.ts'

const root = fileURLToPath(new URL('../../', import.meta.url))
const wranglerEnv = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' }
const SECRET = 'example-test-secret-of-at-least-32-characters'
const ORIGIN = 'http://localhost:8787'

let scratch: string
let exampleScript: string
let bareScript: string
const running: Miniflare[] = []

/** The bundle `wrangler deploy` would upload: wrangler.toml's entry (or `entry`), aliases and settings. */
async function wranglerBuild(name: string, entry?: string): Promise<string> {
  const out = join(scratch, name)
  const wrangler = join(root, 'node_modules/wrangler/bin/wrangler.js')
  const script = entry ? [entry, '--name', name] : []
  await promisify(execFile)(process.execPath, [wrangler, 'deploy', ...script, '--dry-run', '--outdir', out], {
    cwd: root,
    env: wranglerEnv,
  })
  const bundle = (await readdir(out)).find((file) => file.endsWith('.js'))
  if (!bundle) throw new Error(`wrangler built no .js file in ${out}`)
  return join(out, bundle)
}

beforeAll(async () => {
  // Inside the project (.tmp/ is git-ignored): workerd's disk service refuses persist paths that climb out of
  // its working directory with `..`.
  await mkdir(join(root, '.tmp'), { recursive: true })
  scratch = await mkdtemp(join(root, '.tmp', 'cf-example-'))
  ;[exampleScript, bareScript] = await Promise.all([
    wranglerBuild('example'),
    wranglerBuild('bare', 'test/support/workerd/bare-worker.ts'),
  ])
}, 120_000)

afterAll(async () => {
  // Every instance, even one that failed to start, then the scratch directory whatever happened.
  await Promise.allSettled(running.map((mf) => mf.dispose()))
  if (scratch) await rm(scratch, { recursive: true, force: true })
})

/** One edge instance: its own workerd process, the KV state in `persist` (shared when given the same dir). */
async function startInstance(
  persist: string,
  bindings: Record<string, string> = { SESSION_SECRET: SECRET },
  scriptPath = exampleScript,
) {
  let output = ''
  Object.assign(process.env, wranglerEnv)
  const { workerOptions } = unstable_getMiniflareWorkerOptions(join(root, 'wrangler.toml'))
  const mf = new Miniflare({
    name: 'edge-session-example',
    compatibilityDate: workerOptions.compatibilityDate,
    compatibilityFlags: workerOptions.compatibilityFlags,
    kvNamespaces: workerOptions.kvNamespaces,
    // Kept in memory: two instances on one folder would be two objects (test/examples/cloudflare-durable-object).
    durableObjects: workerOptions.durableObjects,
    modules: true,
    scriptPath,
    bindings,
    kvPersist: persist,
    host: '127.0.0.1',
    port: 0,
    // What `wrangler dev` would print: the Worker's console and the runtime's own messages.
    handleRuntimeStdio(stdout, stderr) {
      for (const stream of [stdout, stderr]) {
        stream.setEncoding('utf8')
        stream.on('data', (chunk: string) => {
          output += chunk
        })
      }
    },
  })
  running.push(mf)
  try {
    await mf.ready
  } catch (error) {
    throw new Error(`workerd did not start:\n${output}`, { cause: error })
  }
  return Object.assign(mf, { output: () => output })
}

/** The KV key a session id is stored under: the prefix and base64url(SHA-256(id)), never the id itself. */
const kvKey = (id: string) => `sess:${createHash('sha256').update(id).digest('base64url')}`

/** The session records in KV (not the per-user index entries, `sess:u:...`). */
async function kvKeys(mf: Miniflare) {
  const kv = await mf.getKVNamespace('SESSIONS')
  const { keys } = await kv.list({ prefix: 'sess:' })
  return keys.filter((key) => !key.name.startsWith('sess:u:'))
}

/** The per-user index entries in KV: one per session bound to a user. */
async function indexKeys(mf: Miniflare) {
  const kv = await mf.getKVNamespace('SESSIONS')
  const { keys } = await kv.list({ prefix: 'sess:u:' })
  return keys
}

describe('the Cloudflare example Worker in Miniflare', () => {
  it('counts visits across requests', async () => {
    const mf = await startInstance(await mkdtemp(join(scratch, 'kv-')))
    const browser = new Browser()

    const first = await browser.fetch(mf, '/api/session')
    expect(first.headers.get('x-served-by')).toBe('workerd')
    expect(await first.json()).toEqual({ visits: 1, user: null })
    expect(browser.cookie?.name).toBe('sid')
    await expect(browser.session(mf)).resolves.toEqual({ visits: 2, user: null })
    await expect(browser.session(mf)).resolves.toEqual({ visits: 3, user: null })

    const page = await browser.fetch(mf, '/')
    expect(await page.text()).toMatch(
      /Visits in this session: <strong id="visits">4<\/strong>[\s\S]*Cloudflare KV/,
    )
    // Another browser has its own session.
    await expect(new Browser().session(mf)).resolves.toEqual({ visits: 1, user: null })
  })

  it('continues one session across two instances sharing one persisted KV directory', async () => {
    const persist = await mkdtemp(join(scratch, 'kv-'))
    // One after the other: both open the same KV database, and the first creates it.
    const edgeA = await startInstance(persist)
    const edgeB = await startInstance(persist)
    const browser = new Browser()

    await expect(browser.session(edgeA)).resolves.toEqual({ visits: 1, user: null })
    await expect(browser.session(edgeB)).resolves.toEqual({ visits: 2, user: null })
    const login = await browser.fetch(edgeA, '/api/login', { method: 'POST', json: { user: 'ada' } })
    expect(await login.json()).toEqual({ user: 'ada' })
    await expect(browser.session(edgeB)).resolves.toEqual({ visits: 3, user: 'ada' })
    await expect(browser.session(edgeA)).resolves.toEqual({ visits: 4, user: 'ada' })
    expect(await kvKeys(edgeB)).toHaveLength(1)
  })

  it('regenerates the cookie at login, deleting the old record', async () => {
    const mf = await startInstance(await mkdtemp(join(scratch, 'kv-')))
    const browser = new Browser()
    await browser.session(mf)
    const before = browser.cookie
    const oldId = browser.id

    const login = await browser.fetch(mf, '/api/login', { method: 'POST', json: { user: 'ada' } })
    expect(login.status).toBe(200)
    expect(browser.cookie?.name).toBe('sid')
    expect(browser.id).not.toBe(oldId)
    expect((await kvKeys(mf)).map((key) => key.name)).toEqual([kvKey(browser.id)])
    // The login is in its user's index, named by hashes only: neither the user nor the id appears.
    const [entry, ...more] = await indexKeys(mf)
    expect(more).toEqual([])
    expect(entry?.name.endsWith(`:${kvKey(browser.id).slice('sess:'.length)}`)).toBe(true)
    expect(entry?.name).not.toContain('ada')
    expect(entry?.name).not.toContain(browser.id)
    // The data came along (regenerate keeps it by default); the flash is read once, on the page.
    await expect(browser.session(mf)).resolves.toEqual({ visits: 2, user: 'ada' })
    const page = await (await browser.fetch(mf, '/')).text()
    expect(page).toContain('Welcome, ada!')
    expect(await (await browser.fetch(mf, '/')).text()).not.toContain('Welcome, ada!')

    // The cookie from before login names no session any more: its holder starts afresh.
    const planted = new Browser()
    planted.cookie = before
    await expect(planted.session(mf)).resolves.toEqual({ visits: 1, user: null })
    expect(planted.id).not.toBe(oldId)
  })

  it('logout clears the cookie and deletes the KV record', async () => {
    const mf = await startInstance(await mkdtemp(join(scratch, 'kv-')))
    const browser = new Browser()
    await browser.fetch(mf, '/api/login', { method: 'POST', json: { user: 'ada' } })
    const loggedIn = browser.cookie
    expect(await kvKeys(mf)).toHaveLength(1)

    const logout = await browser.fetch(mf, '/api/logout', { method: 'POST', json: {} })
    expect(await logout.json()).toEqual({ user: null })
    expect(browser.setCookies).toHaveLength(1)
    expect(browser.setCookies[0]).toMatch(/^sid=;.*Max-Age=0/i)
    expect(browser.cookie).toBeUndefined()
    expect(await kvKeys(mf)).toEqual([])
    expect(await indexKeys(mf)).toEqual([])

    // A copy of the logged-in cookie is worthless now.
    const copy = new Browser()
    copy.cookie = loggedIn
    await expect(copy.session(mf)).resolves.toEqual({ visits: 1, user: null })
  })

  it('stores sessions under hashed keys that expire no sooner than 60 s', async () => {
    const mf = await startInstance(await mkdtemp(join(scratch, 'kv-')))
    const browser = new Browser()
    await browser.fetch(mf, '/api/login', { method: 'POST', json: { user: 'ada' } })
    const now = Date.now() / 1000

    const [entry, ...others] = await kvKeys(mf)
    expect(others).toEqual([])
    expect(entry?.name).toBe(kvKey(browser.id))
    expect(entry?.name).not.toContain(browser.id)
    // The default idleTimeout (30 min) is the nearer deadline; KV's own expiry follows it, and is never under 60 s.
    expect(entry?.expiration).toBeGreaterThanOrEqual(Math.floor(now) + 60)
    expect(entry?.expiration).toBeGreaterThan(now + 29 * 60)
    expect(entry?.expiration).toBeLessThanOrEqual(Math.ceil(now) + 30 * 60 + 1)
    const metadata = entry?.metadata as { expiresAt: number }
    expect(Math.abs(metadata.expiresAt / 1000 - (entry?.expiration ?? 0))).toBeLessThanOrEqual(2)

    const kv = await mf.getKVNamespace('SESSIONS')
    const stored = await kv.get(kvKey(browser.id), 'text')
    expect(JSON.parse(stored ?? 'null')).toMatchObject({ meta: { user: { id: 'ada' } } })
    expect(stored).not.toContain(browser.id)
  })

  it('answers 500, and logs why, without SESSION_SECRET', async () => {
    const mf = await startInstance(await mkdtemp(join(scratch, 'kv-')), {})
    const response = await new Browser().fetch(mf, '/api/session')
    expect(response.status).toBe(500)
    expect(await response.text()).toBe('Server misconfigured')
    await expect
      .poll(() => mf.output())
      .toMatch(/edge-session: .*secret.*Set SESSION_SECRET in \.dev\.vars/is)
  })

  it('keeps sessions in Upstash Redis instead when its REST URL and token are set', async () => {
    const upstash = await startLocalUpstash()
    try {
      const mf = await startInstance(await mkdtemp(join(scratch, 'kv-')), {
        SESSION_SECRET: SECRET,
        UPSTASH_REDIS_REST_URL: upstash.endpoint.url,
        UPSTASH_REDIS_REST_TOKEN: upstash.endpoint.token,
      })
      const browser = new Browser()
      await expect(browser.session(mf)).resolves.toEqual({ visits: 1, user: null })
      await browser.fetch(mf, '/api/login', { method: 'POST', json: { user: 'ada' } })
      await expect(browser.session(mf)).resolves.toEqual({ visits: 2, user: 'ada' })
      expect(await (await browser.fetch(mf, '/')).text()).toContain('with the Upstash Redis store')

      expect(await kvKeys(mf)).toEqual([])
      await expect(upstash.direct('EXISTS', kvKey(browser.id))).resolves.toBe(1)
      const redisKeys = (await upstash.direct('KEYS', 'sess:*')) as Uint8Array[]
      expect(redisKeys.map((key) => new TextDecoder().decode(key))).toContain(kvKey(browser.id))
    } finally {
      await upstash.stop()
    }
  })
})

describe('every runtime-neutral entry point in workerd without nodejs_compat', () => {
  it('keeps sessions with the memory, cookie, KV and Durable Objects stores through the Hono middleware', async () => {
    const mf = await startInstance(await mkdtemp(join(scratch, 'kv-')), {}, bareScript)
    const globals = await mf.dispatchFetch(`${ORIGIN}/globals`)
    // The pool of the workerd test project turns nodejs_compat on; this Worker shows the library needs none of it.
    expect(await globals.json()).toEqual({ Buffer: 'undefined', process: 'undefined', upstash: 'upstash' })

    for (const store of ['memory', 'cookie', 'cloudflare-kv', 'durable-object']) {
      const browser = new Browser()
      for (const visits of [1, 2, 3]) {
        const response = await browser.fetch(mf, `/${store}`)
        expect(response.status).toBe(200)
        expect(await response.json()).toEqual({ visits })
      }
    }
    expect(await kvKeys(mf)).toHaveLength(1)
  })
})
