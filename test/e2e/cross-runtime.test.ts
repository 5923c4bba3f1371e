/**
 * @module One session, every runtime: the Node, Deno and Bun examples as separate processes and the Cloudflare
 * Worker in Miniflare, all with one SESSION_SECRET, visited in turn with one cookie jar. First with sessions in
 * Upstash Redis (a real redis-server behind the local Upstash REST endpoint), then with the session sealed in the
 * cookie, where only the cookie format is shared.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RunningExample, startExample } from '../support/examples.ts'
import { type LocalUpstash, startLocalUpstash } from '../support/local-upstash.ts'
import { Client } from './support/client.ts'
import { bundleWorker, startWorker } from './support/workers.ts'

const SECRET = 'cross-runtime-test-secret-0123456789abcdefghij'
const STARTUP = 180_000

/** Starts the four servers, stopping those that did start when one fails. */
async function startAll(
  env: Record<string, string>,
  worker: Promise<{ script: string }>,
): Promise<RunningExample[]> {
  const started = await Promise.allSettled([
    startExample('node', env),
    startExample('deno', env),
    startExample('bun', env),
    worker.then(({ script }) => startWorker(script, env)),
  ])
  const servers = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []))
  const failure = started.find((result) => result.status === 'rejected')
  if (failure) {
    await Promise.all(servers.map((server) => server.stop()))
    throw failure.reason
  }
  return servers
}

describe('one session across Node, Deno, Bun and workerd, kept in Upstash Redis', () => {
  let upstash: LocalUpstash | undefined
  let remove: (() => Promise<void>) | undefined
  let servers: RunningExample[] = []
  let node: RunningExample
  let deno: RunningExample
  let bun: RunningExample
  let workerd: RunningExample

  beforeAll(async () => {
    // The Worker is bundled (wrangler.toml, the example's own entry) while redis-server starts.
    const bundle = bundleWorker()
    bundle.then((built) => (remove = built.remove)).catch(() => {})
    upstash = await startLocalUpstash()
    servers = await startAll(
      {
        SESSION_SECRET: SECRET,
        UPSTASH_REDIS_REST_URL: upstash.endpoint.url,
        UPSTASH_REDIS_REST_TOKEN: upstash.endpoint.token,
      },
      bundle,
    )
    ;[node, deno, bun, workerd] = servers as [RunningExample, RunningExample, RunningExample, RunningExample]
  }, STARTUP)

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop()))
    await upstash?.stop()
    await remove?.()
  })

  it('runs each example on its own runtime with the Upstash store', async () => {
    for (const server of servers) {
      const page = await new Client().page(server)
      expect(page).toContain(`Served by ${server.runtime} with the Upstash Redis store.`)
    }
  })

  it('counts one visit more at each hop: Node, Deno, Bun, workerd, Node', async () => {
    const client = new Client()
    const hops = [node, deno, bun, workerd, node]
    let cookie: string | undefined
    for (const [i, server] of hops.entries()) {
      expect(await client.session(server), `hop ${i + 1}, ${server.runtime}`).toEqual({
        visits: i + 1,
        user: null,
      })
      // One session all along: the id each runtime signed and the others verified.
      cookie ??= client.jar.get('sid')
      expect(client.jar.get('sid')).toBe(cookie)
    }
    expect(cookie).toMatch(/^[\w-]{43}\.[\w-]{43}$/)
  })

  it('sees a login on every runtime, and a logout on one ends the session on all', async () => {
    const client = new Client()
    expect(await client.session(bun)).toEqual({ visits: 1, user: null })
    const beforeLogin = client.clone()
    await client.login(deno, 'ada')
    // A new id at login: the cookie from before names no session on any runtime.
    expect(client.jar.get('sid')).not.toBe(beforeLogin.jar.get('sid'))
    expect(await client.session(workerd)).toEqual({ visits: 2, user: 'ada' })
    expect(await client.session(node)).toEqual({ visits: 3, user: 'ada' })
    expect(await client.session(bun)).toEqual({ visits: 4, user: 'ada' })
    // The welcome flash is shown once, by whichever runtime renders the page first.
    expect(await client.page(node)).toContain('Welcome, ada!')
    expect(await client.page(workerd)).not.toContain('Welcome, ada!')
    for (const server of servers) {
      expect(await beforeLogin.clone().session(server), server.runtime).toEqual({ visits: 1, user: null })
    }

    const stolen = client.clone()
    await client.logout(workerd)
    expect(client.jar.cookies.size).toBe(0)
    // Even a copy of the logged-in cookie is worthless now, everywhere.
    for (const server of servers) {
      expect(await stolen.clone().session(server), server.runtime).toEqual({ visits: 1, user: null })
    }
  })

  it('accepts the signed cookie of each runtime on every other', async () => {
    for (const issuer of servers) {
      const client = new Client()
      await client.login(issuer, `user of ${issuer.runtime}`)
      const others = servers.filter((server) => server !== issuer)
      for (const [i, server] of others.entries()) {
        expect(await client.session(server), `${issuer.runtime} → ${server.runtime}`).toEqual({
          visits: i + 1,
          user: `user of ${issuer.runtime}`,
        })
      }
    }
  })
})

describe('one session across Node, Deno, Bun and workerd, sealed in the cookie', () => {
  let remove: (() => Promise<void>) | undefined
  let servers: RunningExample[] = []
  let node: RunningExample
  let deno: RunningExample
  let bun: RunningExample
  let workerd: RunningExample

  beforeAll(async () => {
    // The Cloudflare example has no cookie-store switch: the same demo app with cookieStore() in workerd.
    const bundle = bundleWorker('test/e2e/fixtures/cookie-worker.ts')
    bundle.then((built) => (remove = built.remove)).catch(() => {})
    servers = await startAll({ SESSION_SECRET: SECRET, SESSION_STORE: 'cookie' }, bundle)
    ;[node, deno, bun, workerd] = servers as [RunningExample, RunningExample, RunningExample, RunningExample]
  }, STARTUP)

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop()))
    await remove?.()
  })

  it('runs each example on its own runtime with the sealed-cookie store', async () => {
    for (const server of servers) {
      const page = await new Client().page(server)
      expect(page).toContain(`Served by ${server.runtime} with the sealed cookie store.`)
    }
  })

  it('counts one visit more at each hop, each runtime opening the seal of the one before', async () => {
    const client = new Client()
    const hops = [node, deno, bun, workerd, node]
    const seals = new Set<string>()
    for (const [i, server] of hops.entries()) {
      expect(await client.session(server), `hop ${i + 1}, ${server.runtime}`).toEqual({
        visits: i + 1,
        user: null,
      })
      seals.add(client.jar.header())
    }
    // Every hop changed the data, so every runtime sealed a new cookie: five, all different.
    expect(seals.size).toBe(5)
    expect(client.jar.get('sid')).toMatch(/^Fe26\.2\*/)
  })

  it('opens the sealed cookie of each runtime on every other', async () => {
    for (const issuer of servers) {
      const client = new Client()
      await client.login(issuer, `user of ${issuer.runtime}`)
      const others = servers.filter((server) => server !== issuer)
      for (const [i, server] of others.entries()) {
        expect(await client.session(server), `${issuer.runtime} → ${server.runtime}`).toEqual({
          visits: i + 1,
          user: `user of ${issuer.runtime}`,
        })
      }
    }
  })

  it('refuses a tampered seal on every runtime, and logs out on one for all', async () => {
    const client = new Client()
    await client.login(bun, 'ada')
    const sealed = client.jar.get('sid') ?? ''
    const at = sealed.length - 10
    const tampered = sealed.slice(0, at) + (sealed[at] === 'A' ? 'B' : 'A') + sealed.slice(at + 1)
    for (const server of servers) {
      const forger = new Client()
      forger.jar.cookies.set('sid', tampered)
      expect(await forger.session(server), server.runtime).toEqual({ visits: 1, user: null })
      expect(forger.jar.get('sid')).not.toBe(tampered)
    }

    expect(await client.session(workerd)).toEqual({ visits: 1, user: 'ada' })
    await client.logout(deno)
    expect(client.jar.cookies.size).toBe(0)
    for (const server of servers) {
      expect(await client.clone().session(server), server.runtime).toEqual({ visits: 1, user: null })
    }
  })
})
