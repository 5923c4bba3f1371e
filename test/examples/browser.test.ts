/**
 * @module In a real browser: Debian's Chromium, driven by playwright-core, logs in on one Node example and finds
 * itself logged in on a second one (another process, another port) that shares the Upstash store; it logs out
 * there and is logged out on the first. Cookies do not depend on the port, so both servers see one cookie.
 */

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type BrowserContext, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CHROMIUM } from '../support/chromium.ts'
import { type RunningExample, startExample } from '../support/examples.ts'
import { type LocalUpstash, startLocalUpstash } from '../support/local-upstash.ts'

const SECRET = 'browser-test-secret-0123456789abcdefghijklmnop'

let upstash: LocalUpstash | undefined
let servers: RunningExample[] = []
let first: RunningExample
let second: RunningExample
let profile: string | undefined
let context: BrowserContext | undefined
let otherProfile: string | undefined
let other: BrowserContext | undefined

beforeAll(async () => {
  upstash = await startLocalUpstash()
  const env = {
    SESSION_SECRET: SECRET,
    UPSTASH_REDIS_REST_URL: upstash.endpoint.url,
    UPSTASH_REDIS_REST_TOKEN: upstash.endpoint.token,
  }
  const started = await Promise.allSettled([startExample('node', env), startExample('node', env)])
  servers = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []))
  for (const result of started) if (result.status === 'rejected') throw result.reason
  ;[first, second] = servers as [RunningExample, RunningExample]
  profile = await mkdtemp(join(tmpdir(), 'edge-session-chromium-'))
  context = await chromium.launchPersistentContext(profile, CHROMIUM)
  // A second browser (its own profile, its own cookies): the user's other device.
  otherProfile = await mkdtemp(join(tmpdir(), 'edge-session-chromium-'))
  other = await chromium.launchPersistentContext(otherProfile, { ...CHROMIUM, userAgent: 'Second browser' })
}, 180_000)

afterAll(async () => {
  await context?.close()
  await other?.close()
  if (otherProfile) await rm(otherProfile, { recursive: true, force: true })
  await Promise.all(servers.map((server) => server.stop()))
  await upstash?.stop()
  if (profile) await rm(profile, { recursive: true, force: true })
})

/**
 * The README's picture of the demo page (docs/demo.png): the page's card with a margin of its background. Written
 * only with UPDATE_SCREENSHOTS=1, so a test run leaves the tree as it found it.
 */
async function screenshot(page: Page, path: string) {
  if (process.env.UPDATE_SCREENSHOTS !== '1') return
  const box = await page.locator('main').boundingBox()
  if (!box) throw new Error('the demo page has no <main> to photograph')
  const margin = 24
  await page.screenshot({
    path: fileURLToPath(new URL(`../../${path}`, import.meta.url)),
    clip: {
      x: box.x - margin,
      y: box.y - margin,
      width: box.width + 2 * margin,
      height: box.height + 2 * margin,
    },
  })
}

/** What the demo page shows. */
async function view(page: Page) {
  return {
    visits: Number(await page.locator('#visits').textContent()),
    user: (await page.locator('#user').count()) > 0 ? await page.locator('#user').textContent() : null,
    flashes: await page.locator('.flash').allTextContents(),
  }
}

describe('a browser session shared by two Node instances through Upstash', () => {
  it('logs in on one, stays logged in on the other, and logs out of both from the second', async () => {
    if (!context) throw new Error('no browser')
    const page = await context.newPage()

    await page.goto(`${first.url}/`)
    expect(await view(page)).toEqual({ visits: 1, user: null, flashes: [] })
    expect(await page.textContent('footer')).toContain('with the Upstash Redis store')

    // The form posts to /api/login, which answers with a redirect to the page.
    await page.fill('input[name="user"]', 'ada')
    await Promise.all([page.waitForURL(`${first.url}/`), page.click('button[type="submit"]')])
    expect(await view(page)).toEqual({ visits: 2, user: 'ada', flashes: ['Welcome, ada!'] })
    await screenshot(page, 'docs/demo.png')

    // The flash was for one page only.
    await page.reload()
    expect(await view(page)).toEqual({ visits: 3, user: 'ada', flashes: [] })

    // The session cookie is HttpOnly: scripts do not see it; the browser keeps it for 127.0.0.1, any port.
    expect(await page.evaluate(() => document.cookie)).toBe('')
    const [cookie, ...others] = await context.cookies(first.url)
    expect(others).toEqual([])
    expect(cookie).toMatchObject({
      name: 'sid',
      domain: '127.0.0.1',
      path: '/',
      httpOnly: true,
      sameSite: 'Lax',
    })
    // `Secure` by default: Chromium keeps a Secure cookie set over http://127.0.0.1 and sends it back here.
    expect(cookie?.secure).toBe(true)

    // Another process, another port: the same session, from the shared store.
    await page.goto(`${second.url}/`)
    expect(await view(page)).toEqual({ visits: 4, user: 'ada', flashes: [] })
    expect(await page.evaluate(() => document.cookie)).toBe('')

    await Promise.all([page.waitForURL(`${second.url}/`), page.click('button[type="submit"]')])
    const afterLogout = await view(page)
    expect(afterLogout.user).toBeNull()
    // The page after the redirect starts a new, anonymous session.
    expect(afterLogout.visits).toBe(1)
    expect((await context.cookies(second.url))[0]?.value).not.toBe(cookie?.value)

    // Logged out on the first instance too, and the old cookie opens nothing there.
    await page.goto(`${first.url}/`)
    expect(await view(page)).toEqual({ visits: 2, user: null, flashes: [] })
    // A copy of the logged-in cookie, put back by hand, names no session any more.
    await context.clearCookies()
    if (cookie) await context.addCookies([cookie])
    await page.goto(`${first.url}/`)
    expect(await view(page)).toEqual({ visits: 1, user: null, flashes: [] })
    await page.close()
  })
})

describe("a user's devices, seen and revoked from the browser", () => {
  it("lists the other browser's session and revokes it with its button; the other browser is logged out", async () => {
    if (!context || !other) throw new Error('no browser')
    const login = async (browser: BrowserContext, url: string) => {
      const page = await browser.newPage()
      await page.goto(`${url}/`)
      await page.fill('input[name="user"]', 'lin')
      await Promise.all([page.waitForURL(`${url}/`), page.click('form[action="/api/login"] button')])
      expect((await view(page)).user).toBe('lin')
      return page
    }
    const mine = await login(context, first.url)
    const theirs = await login(other, second.url)

    await mine.reload()
    const devices = mine.locator('#devices li')
    expect(await devices.count()).toBe(2)
    expect(await mine.locator('#devices').textContent()).toContain('Second browser')
    expect(await mine.locator('#devices .here').count()).toBe(1)
    // The other browser's row has the one revoke button on the page.
    await Promise.all([
      mine.waitForURL(`${first.url}/`),
      mine.click('#devices form[action="/api/sessions/revoke"] button'),
    ])
    expect(await mine.locator('#devices li').count()).toBe(1)
    expect((await view(mine)).user).toBe('lin')

    // The revoked browser's next request is a fresh, anonymous session.
    await theirs.reload()
    expect(await view(theirs)).toEqual({ visits: 1, user: null, flashes: [] })
    await mine.close()
    await theirs.close()
  })
})
