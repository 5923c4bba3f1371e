/**
 * @module The demo app on Node over the Upstash store, for the load test while the Node example does not read
 * UPSTASH_REDIS_REST_URL / UPSTASH_REDIS_REST_TOKEN itself: the same app, store and server adapter.
 */
import { serve } from '@hono/node-server'
import { Redis } from '@upstash/redis'
import { createSessions } from 'edge-session'
import { upstashStore } from 'edge-session/stores/upstash'
import { createDemoApp, type DemoData } from '../../examples/shared/app.ts'

const env = process.env
const sessions = createSessions<DemoData>({
  store: upstashStore({ redis: Redis.fromEnv() }),
  secrets: [env.SESSION_SECRET ?? ''],
})
const app = createDemoApp(sessions, { runtime: 'node', store: 'upstash' })
const server = serve({ fetch: app.fetch, port: Number(env.PORT), hostname: '127.0.0.1' }, (info) => {
  console.log(`edge-session demo (node, upstash store) listening on http://127.0.0.1:${info.port}`)
})
const stop = () => server.close(() => process.exit(0))
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
