/**
 * @module The cookie cache in a real browser: Debian's Chromium, driven by playwright-core, against a Hono app on
 * Node whose sessions live in Upstash (the local endpoint) behind `cookieCache`. Its reads make no store call;
 * a session revoked from another device stays visible to this browser for `maxAge` at most, then ends; a
 * `{ fresh: true }` route sees the revocation at once. The sessions' clock is the test's, so `maxAge` passes
 * exactly when the test says (the browser keeps the cache cookie longer in real time than the test takes).
 */

import { mkdtemp, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type ServerType, serve } from '@hono/node-server'
import { createSessions, type Session } from 'edge-session'
import { session } from 'edge-session/hono'
import { upstashStore } from 'edge-session/stores/upstash'
import { Hono } from 'hono'
import { type BrowserContext, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CHROMIUM } from '../support/chromium.ts'
import { manualClock } from '../support/jar.ts'
import { type LocalUpstash, startLocalUpstash } from '../support/local-upstash.ts'

const SECRET = 'cookie-cache-browser-secret-0123456789abcdef'
const MAX_AGE = 30

let upstash: LocalUpstash | undefined
let server: ServerType | undefined
let url = ''
let profile: string | undefined
let context: BrowserContext | undefined
const clock = manualClock()

type Data = { visits?: number }

function createApp(local: LocalUpstash) {
  const sessions = createSessions<Data>({
    store: upstashStore({ redis: local.client(), prefix: 'cache-browser:' }),
    secrets: SECRET,
    cookieCache: { maxAge: MAX_AGE },
    now: clock.now,
  })
  const app = new Hono<{ Variables: { session: Session<Data> } }>()
  // A sensitive group reads the store on every request; the rest of the app trusts the cache.
  app.use('/account/*', session(sessions, { fresh: true }))
  app.use('/app/*', session(sessions))
  const show = (s: Session<Data>) => ({ user: s.userId, handle: s.handle, isNew: s.isNew })
  app.get('/app/login', (c) => {
    c.get('session').setUser('ada')
    return c.text('logged in')
  })
  app.get('/app/me', (c) => c.json(show(c.get('session'))))
  app.get('/account/me', (c) => c.json(show(c.get('session'))))
  return { app, sessions }
}

let sessions: ReturnType<typeof createApp>['sessions']

beforeAll(async () => {
  upstash = await startLocalUpstash()
  const created = createApp(upstash)
  sessions = created.sessions
  const port = await new Promise<number>((resolve) => {
    server = serve({ fetch: created.app.fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) =>
      resolve(info.port),
    )
  })
  url = `http://127.0.0.1:${port}`
  profile = await mkdtemp(join(tmpdir(), 'edge-session-chromium-'))
  context = await chromium.launchPersistentContext(profile, CHROMIUM)
}, 180_000)

afterAll(async () => {
  await context?.close()
  if (profile) await rm(profile, { recursive: true, force: true })
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)))
  await upstash?.stop()
})

async function me(
  page: Page,
  path = '/app/me',
): Promise<{ user: string | null; handle: string; isNew: boolean }> {
  await page.goto(`${url}${path}`)
  return JSON.parse((await page.locator('body').textContent()) ?? '{}')
}

/** Store round trips (HTTP requests to the endpoint) the step costs. */
async function trips<T>(step: () => Promise<T>): Promise<[T, number]> {
  const endpoint = (upstash as LocalUpstash).endpoint
  endpoint.resetCounts()
  const result = await step()
  return [result, endpoint.requestCount]
}

describe('the cookie cache in Chromium', () => {
  it('answers reads from the cache, and a revoked session ends within maxAge (at once on a fresh route)', async () => {
    if (!context) throw new Error('no browser')
    const page = await context.newPage()
    await page.goto(`${url}/app/login`)
    const issued = clock.now()
    // Two cookies, same attributes: the signed id and the sealed cache, both HttpOnly and Secure.
    const cookies = await context.cookies(url)
    expect(cookies.map((c) => c.name).sort()).toEqual(['sid', 'sid.cache'])
    for (const cookie of cookies)
      expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Lax' })
    expect(await page.evaluate(() => document.cookie)).toBe('')

    // Reads with a warm cache: no store round trip.
    const [seen, cost] = await trips(() => me(page))
    expect(seen).toMatchObject({ user: 'ada', isNew: false })
    expect(cost).toBe(0)

    // Another device revokes this session.
    expect(await sessions.revokeUserSession('ada', seen.handle)).toBe(true)
    clock.set(issued + MAX_AGE * 1000 - 1)
    const [stale, staleCost] = await trips(() => me(page))
    // Within maxAge: this browser still sees it (the bound the docs state), with no store call.
    expect(stale).toMatchObject({ user: 'ada', isNew: false })
    expect(staleCost).toBe(0)
    clock.set(issued + MAX_AGE * 1000)
    const [ended, endedCost] = await trips(() => me(page))
    expect(ended).toMatchObject({ user: null, isNew: true })
    expect(endedCost).toBe(1)
    // Both cookies are gone: the revoked id and its cache.
    expect(await context.cookies(url)).toEqual([])

    // Log in again, revoke again: the fresh route sees it at once, while the cache would still answer.
    await page.goto(`${url}/app/login`)
    const again = await me(page)
    expect(again).toMatchObject({ user: 'ada', isNew: false })
    expect(await sessions.revokeUserSession('ada', again.handle)).toBe(true)
    const [fresh, freshCost] = await trips(() => me(page, '/account/me'))
    expect(fresh).toMatchObject({ user: null, isNew: true })
    expect(freshCost).toBe(1)
    // That response cleared both cookies: the rest of the app sees the revocation now too.
    expect(await me(page)).toMatchObject({ user: null, isNew: true })
    await page.close()
  })
})
