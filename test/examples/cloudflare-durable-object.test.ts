/**
 * @module The Cloudflare example with SESSION_STORE=durable-object: bundled by Wrangler from wrangler.toml (which
 * binds `SESSION_OBJECTS` to the Worker's own `SessionObject`), served by Miniflare (workerd) with the objects'
 * storage persisted on disk, driven from Node as a browser would, and restarted on that persisted state.
 */

import { join } from 'node:path'
import type { Miniflare } from 'miniflare'
import { describe, expect, it } from 'vitest'
import { unstable_getMiniflareWorkerOptions } from 'wrangler'
import { Browser } from '../support/examples/miniflare-browser.ts'
import { persistedWorker } from '../support/examples/persisted-worker.ts'
import { root } from '../support/examples.ts'

const example = persistedWorker('durable-object')

/** Whether the KV namespace holds anything: with this store, it must not. */
async function kvIsEmpty(mf: Miniflare) {
  const kv = await mf.getKVNamespace('SESSIONS')
  return (await kv.list()).keys.length === 0
}

describe('the Cloudflare example Worker with SESSION_STORE=durable-object', () => {
  it("is bound by wrangler.toml: SESSION_OBJECTS to the Worker's SessionObject, on SQLite storage", () => {
    Object.assign(process.env, { CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' })
    const { workerOptions } = unstable_getMiniflareWorkerOptions(join(root, 'wrangler.toml'))
    expect(workerOptions.durableObjects).toEqual({
      SESSION_OBJECTS: { className: 'SessionObject', useSQLite: true },
    })
  })

  it('keeps a session in Durable Objects, and finds it again after a restart on the persisted state', async () => {
    const persist = await example.state()
    const first = await example.start(persist)
    const browser = new Browser()
    await expect(browser.session(first)).resolves.toEqual({ visits: 1, user: null })
    const login = await browser.fetch(first, '/api/login', { method: 'POST', json: { user: 'ada' } })
    expect(await login.json()).toEqual({ user: 'ada' })
    await expect(browser.session(first)).resolves.toEqual({ visits: 2, user: 'ada' })
    expect(await (await browser.fetch(first, '/')).text()).toContain('Cloudflare Durable Objects')
    expect(await kvIsEmpty(first)).toBe(true)
    const cookie = browser.cookie
    await example.stop(first)

    // A new workerd process on the same folder: the objects, their records and the user's index are all there.
    const second = await example.start(persist)
    expect(browser.cookie).toEqual(cookie)
    // Three visits before (the page view counted one), this the fourth.
    await expect(browser.session(second)).resolves.toEqual({ visits: 4, user: 'ada' })
    const devices = await browser.fetch(second, '/api/sessions')
    expect(devices.status).toBe(200)
    expect(JSON.stringify(await devices.json())).toContain('"current":true')
  })

  it('logs out for good: a copy of the cookie opens nothing, in this instance or after a restart', async () => {
    const persist = await example.state()
    const mf = await example.start(persist)
    const browser = new Browser()
    await browser.fetch(mf, '/api/login', { method: 'POST', json: { user: 'ada' } })
    const loggedIn = browser.cookie
    const logout = await browser.fetch(mf, '/api/logout', { method: 'POST', json: {} })
    expect(await logout.json()).toEqual({ user: null })
    expect(browser.setCookies[0]).toMatch(/^sid=;.*Max-Age=0/i)

    const copy = new Browser()
    copy.cookie = loggedIn
    await expect(copy.session(mf)).resolves.toEqual({ visits: 1, user: null })
    await example.stop(mf)
    const again = await example.start(persist)
    const other = new Browser()
    other.cookie = loggedIn
    await expect(other.session(again)).resolves.toEqual({ visits: 1, user: null })
  })

  it("revokes another device's session at once: its next request starts afresh", async () => {
    const mf = await example.start(await example.state())
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
