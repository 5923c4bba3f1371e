/**
 * @module The demo app on Node (`npm start`), also run unchanged by Bun.
 *
 * Environment: PORT (default 3000), SESSION_SECRET (at least 32 characters), SESSION_STORE=cookie to seal the
 * session into the cookie itself instead of keeping it in memory.
 */

import { serve } from '@hono/node-server'
import { createSessions } from 'edge-session'
import { cookieStore } from 'edge-session/stores/cookie'
import { memoryStore } from 'edge-session/stores/memory'
import { createDemoApp, type DemoData } from '../shared/app.ts'

const env = process.env
const port = Number(env.PORT ?? 3000)
const runtime = typeof (globalThis as { Bun?: unknown }).Bun === 'undefined' ? 'node' : 'bun'

let secret = env.SESSION_SECRET
if (!secret) {
  secret = crypto.randomUUID() + crypto.randomUUID()
  console.warn(
    'SESSION_SECRET is not set: using a random secret, so every session ends when this process does. ' +
      'Set SESSION_SECRET (at least 32 characters) to keep sessions across restarts and share them between instances.',
  )
}

const sealed = env.SESSION_STORE === 'cookie'
const store = sealed ? cookieStore() : memoryStore()
const storeName = sealed ? 'sealed cookie' : 'memory'
const sessions = createSessions<DemoData>({ store, secrets: [secret] })
const app = createDemoApp(sessions, { runtime, store: storeName })

const server = serve({ fetch: app.fetch, port, hostname: env.HOST ?? '127.0.0.1' }, (info) => {
  console.log(`edge-session demo (${runtime}, ${storeName} store) listening on http://localhost:${info.port}`)
})

const stop = () => server.close(() => process.exit(0))
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
