/**
 * @module One session, every runtime: the Node, Deno and Bun examples as separate processes and the Cloudflare
 * Worker in Miniflare, all with one SESSION_SECRET, visited in turn with one cookie jar. First with sessions in
 * Upstash Redis (a real redis-server behind the local Upstash REST endpoint), then with the session sealed in the
 * cookie, where only the cookie format is shared.
 */

import { describe, expect, it } from 'vitest'
import { Client } from '../support/examples/client.ts'
import { bundleWorker, startWorker } from '../support/examples/workers.ts'
import { type RunningExample, startExample } from '../support/examples.ts'
import { fileResource } from '../support/file-resource.ts'
import { useLocalUpstash } from '../support/use-local-upstash.ts'

const SECRET = 'cross-runtime-test-secret-0123456789abcdefghij'
const STARTUP = 180_000

interface Servers {
  /** Node, Deno, Bun and workerd, in this order. */
  readonly all: RunningExample[]
  readonly node: RunningExample
  readonly deno: RunningExample
  readonly bun: RunningExample
  readonly workerd: RunningExample
  /** Stops every server and removes the Worker's bundle. */
  stop(): Promise<void>
}

/**
 * Starts the four servers with `env`, the Worker bundled from `entry` (wrangler.toml's own without it) while the
 * others start; stops those that did start when one fails.
 */
async function startAll(env: Record<string, string>, entry?: string): Promise<Servers> {
  const bundle = bundleWorker(entry)
  const started = await Promise.allSettled([
    startExample('node', env),
    startExample('deno', env),
    startExample('bun', env),
    bundle.then(({ script }) => startWorker(script, env)),
  ])
  const all = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []))
  const stop = async () => {
    await Promise.all(all.map((server) => server.stop()))
    await bundle.then(
      (built) => built.remove(),
      () => {},
    )
  }
  const failure = started.find((result) => result.status === 'rejected')
  if (failure) {
    await stop()
    throw failure.reason
  }
  const [node, deno, bun, workerd] = all as [RunningExample, RunningExample, RunningExample, RunningExample]
  return { all, node, deno, bun, workerd, stop }
}

/** The four servers for the tests of one describe block: started before them with `env()`, stopped after them. */
const useServers = (env: () => Record<string, string>, entry?: string): Servers =>
  fileResource(
    () => startAll(env(), entry),
    (servers) => servers.stop(),
    STARTUP,
  )

/** Each server's page names its own runtime and `store`. */
async function expectEachServedWith(servers: Servers, store: string): Promise<void> {
  for (const server of servers.all) {
    const page = await new Client().page(server)
    expect(page).toContain(`Served by ${server.runtime} with the ${store}.`)
  }
}

/** A user logged in on each server in turn is known on every other, with one visit more at each. */
async function expectLoginOfEachKnownToOthers(servers: Servers): Promise<void> {
  for (const issuer of servers.all) {
    const client = new Client()
    await client.login(issuer, `user of ${issuer.runtime}`)
    const others = servers.all.filter((server) => server !== issuer)
    for (const [i, server] of others.entries()) {
      expect(await client.session(server), `${issuer.runtime} → ${server.runtime}`).toEqual({
        visits: i + 1,
        user: `user of ${issuer.runtime}`,
      })
    }
  }
}

describe('one session across Node, Deno, Bun and workerd, kept in Upstash Redis', () => {
  // Started first, stopped last: afterAll hooks run last registered first.
  const upstash = useLocalUpstash({ resetEach: false })
  const servers = useServers(() => ({
    SESSION_SECRET: SECRET,
    UPSTASH_REDIS_REST_URL: upstash.endpoint.url,
    UPSTASH_REDIS_REST_TOKEN: upstash.endpoint.token,
  }))

  it('runs each example on its own runtime with the Upstash store', async () => {
    await expectEachServedWith(servers, 'Upstash Redis store')
  })

  it('counts one visit more at each hop: Node, Deno, Bun, workerd, Node', async () => {
    const client = new Client()
    const hops = [servers.node, servers.deno, servers.bun, servers.workerd, servers.node]
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
    expect(await client.session(servers.bun)).toEqual({ visits: 1, user: null })
    const beforeLogin = client.clone()
    await client.login(servers.deno, 'ada')
    // A new id at login: the cookie from before names no session on any runtime.
    expect(client.jar.get('sid')).not.toBe(beforeLogin.jar.get('sid'))
    expect(await client.session(servers.workerd)).toEqual({ visits: 2, user: 'ada' })
    expect(await client.session(servers.node)).toEqual({ visits: 3, user: 'ada' })
    expect(await client.session(servers.bun)).toEqual({ visits: 4, user: 'ada' })
    // The welcome flash is shown once, by whichever runtime renders the page first.
    expect(await client.page(servers.node)).toContain('Welcome, ada!')
    expect(await client.page(servers.workerd)).not.toContain('Welcome, ada!')
    for (const server of servers.all) {
      expect(await beforeLogin.clone().session(server), server.runtime).toEqual({ visits: 1, user: null })
    }

    const stolen = client.clone()
    await client.logout(servers.workerd)
    expect(client.jar.cookies.size).toBe(0)
    // Even a copy of the logged-in cookie is worthless now, everywhere.
    for (const server of servers.all) {
      expect(await stolen.clone().session(server), server.runtime).toEqual({ visits: 1, user: null })
    }
  })

  it('accepts the signed cookie of each runtime on every other', async () => {
    await expectLoginOfEachKnownToOthers(servers)
  })

  it('lists a login made on Deno on Node, and a revocation from Bun ends it on every runtime', async () => {
    const phone = new Client()
    await phone.login(servers.deno, 'grace')
    const laptop = new Client()
    await laptop.login(servers.workerd, 'grace')
    const listed = await laptop.devices(servers.node)
    expect(listed.map((device) => device.current)).toEqual([true, false])
    const phoneHandle = listed.find((device) => !device.current)?.handle ?? ''
    expect(phoneHandle).toMatch(/^[\w-]{22}$/)
    expect(await laptop.revoke(servers.bun, phoneHandle)).toEqual({ revoked: true })
    for (const server of servers.all) {
      expect(await phone.clone().session(server), server.runtime).toEqual({ visits: 1, user: null })
      expect(
        (await laptop.devices(server)).map((device) => device.current),
        server.runtime,
      ).toEqual([true])
    }
  })
})

describe('one session across Node, Deno, Bun and workerd, sealed in the cookie', () => {
  // The Cloudflare example has no cookie-store switch: the same demo app with cookieStore() in workerd.
  const servers = useServers(
    () => ({ SESSION_SECRET: SECRET, SESSION_STORE: 'cookie' }),
    'test/support/examples/cookie-worker.ts',
  )

  it('runs each example on its own runtime with the sealed-cookie store', async () => {
    await expectEachServedWith(servers, 'sealed cookie store')
  })

  it('counts one visit more at each hop, each runtime opening the seal of the one before', async () => {
    const client = new Client()
    const hops = [servers.node, servers.deno, servers.bun, servers.workerd, servers.node]
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
    await expectLoginOfEachKnownToOthers(servers)
  })

  it('refuses a tampered seal on every runtime, and logs out on one for all', async () => {
    const client = new Client()
    await client.login(servers.bun, 'ada')
    const sealed = client.jar.get('sid') ?? ''
    const at = sealed.length - 10
    const tampered = sealed.slice(0, at) + (sealed[at] === 'A' ? 'B' : 'A') + sealed.slice(at + 1)
    for (const server of servers.all) {
      const forger = new Client()
      forger.jar.cookies.set('sid', tampered)
      expect(await forger.session(server), server.runtime).toEqual({ visits: 1, user: null })
      expect(forger.jar.get('sid')).not.toBe(tampered)
    }

    expect(await client.session(servers.workerd)).toEqual({ visits: 1, user: 'ada' })
    await client.logout(servers.deno)
    expect(client.jar.cookies.size).toBe(0)
    for (const server of servers.all) {
      expect(await client.clone().session(server), server.runtime).toEqual({ visits: 1, user: null })
    }
  })
})
