/**
 * @module The demo app on Deno: `npm run example:deno` from the repository, or `deno task start` here.
 *
 * Environment:
 * - `PORT` (default 8000) and `HOST` (default 127.0.0.1).
 * - `SESSION_SECRET`: at least 32 characters. Unset, a random one is used and every session ends with the process.
 * - The store, the first that applies: `SESSION_STORE=cookie` seals the session into the cookie itself;
 *   `UPSTASH_REDIS_REST_URL` and `UPSTASH_REDIS_REST_TOKEN` keep sessions in Upstash Redis, shared with every
 *   other instance; `DENO_KV_PATH` keeps them in a Deno KV file, shared by the processes on this machine that
 *   open it; otherwise they live in this process's memory.
 *
 * In an app of your own, import from `edge-session` as a package: this folder's deno.json maps it to the
 * repository's sources.
 */

import { Redis } from '@upstash/redis'
import { createSessions, type SessionStore } from 'edge-session'
import { cookieStore } from 'edge-session/stores/cookie'
import { denoKvStore } from 'edge-session/stores/deno-kv'
import { memoryStore } from 'edge-session/stores/memory'
import { upstashStore } from 'edge-session/stores/upstash'
import { createDemoApp, type DemoData } from '../shared/app.ts'

const env = Deno.env.toObject()
const port = Number(env.PORT ?? 8000)

let secret = env.SESSION_SECRET
if (!secret) {
  secret = crypto.randomUUID() + crypto.randomUUID()
  console.warn(
    'SESSION_SECRET is not set: using a random secret, so every session ends when this process does. ' +
      'Set SESSION_SECRET (at least 32 characters) to keep sessions across restarts and share them between instances.',
  )
}

/** The store the environment asks for, its name for the page, and what to close on exit. */
async function chooseStore(): Promise<{ store: SessionStore; name: string; close?: () => void }> {
  if (env.SESSION_STORE === 'cookie') return { store: cookieStore(), name: 'sealed cookie' }
  if (env.UPSTASH_REDIS_REST_URL && env.UPSTASH_REDIS_REST_TOKEN) {
    const redis = new Redis({ url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN })
    return { store: upstashStore({ redis }), name: 'Upstash Redis' }
  }
  if (env.DENO_KV_PATH) {
    const kv = await Deno.openKv(env.DENO_KV_PATH)
    return { store: denoKvStore({ kv }), name: 'Deno KV', close: () => kv.close() }
  }
  return { store: memoryStore(), name: 'memory' }
}

const { store, name: storeName, close } = await chooseStore()
const sessions = createSessions<DemoData>({ store, secrets: [secret] })
const app = createDemoApp(sessions, { runtime: 'deno', store: storeName })

const server = Deno.serve(
  {
    port,
    hostname: env.HOST ?? '127.0.0.1',
    onListen: ({ port }) => {
      console.log(`edge-session demo (deno, ${storeName} store) listening on http://localhost:${port}`)
    },
  },
  app.fetch,
)

const stop = async () => {
  await server.shutdown()
  close?.()
  Deno.exit(0)
}
Deno.addSignalListener('SIGINT', stop)
Deno.addSignalListener('SIGTERM', stop)
