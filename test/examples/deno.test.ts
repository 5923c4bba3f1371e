/**
 * @module The Deno example with DENO_KV_PATH: two Deno processes open one Deno KV file (SQLite) and share the
 * sessions kept in it through denoKvStore.
 */

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client } from '../support/examples/client.ts'
import { type RunningExample, startExample } from '../support/examples.ts'

let dir: string | undefined
let servers: RunningExample[] = []
let first: RunningExample
let second: RunningExample

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edge-session-deno-kv-'))
  const env = {
    SESSION_SECRET: 'deno-kv-example-secret-0123456789abcdefghij',
    DENO_KV_PATH: join(dir, 'kv.sqlite'),
  }
  const started = await Promise.allSettled([startExample('deno', env), startExample('deno', env)])
  servers = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []))
  for (const result of started) if (result.status === 'rejected') throw result.reason
  ;[first, second] = servers as [RunningExample, RunningExample]
}, 180_000)

afterAll(async () => {
  await Promise.all(servers.map((server) => server.stop()))
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('the Deno example on one Deno KV file, in two processes', () => {
  it('names the Deno KV store', async () => {
    expect(await new Client().page(first)).toContain('Served by deno with the Deno KV store.')
  })

  it('continues one session from process to process, through login and logout', async () => {
    const client = new Client()
    expect(await client.session(first)).toEqual({ visits: 1, user: null })
    expect(await client.session(second)).toEqual({ visits: 2, user: null })
    await client.login(second, 'ada')
    expect(await client.session(first)).toEqual({ visits: 3, user: 'ada' })
    expect(await client.page(second)).toContain('Welcome, ada!')
    expect(await client.page(first)).not.toContain('Welcome, ada!')

    const copy = client.clone()
    await client.logout(first)
    expect(client.jar.cookies.size).toBe(0)
    expect(await copy.session(second)).toEqual({ visits: 1, user: null })
  })
})
