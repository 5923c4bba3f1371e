/**
 * @module A bare Hono app on @hono/node-server with the one route the HTTP benchmark loads (`GET /api/session`),
 * answering the same JSON as the Node example. SESSION_STORE=memory or cookie adds edge-session's middleware
 * and counts visits as the example does; unset, there is no session at all.
 * Environment: PORT, HOST (default 127.0.0.1), SESSION_SECRET, SESSION_STORE.
 */

import { serve } from '@hono/node-server'
import { createSessions } from 'edge-session'
import { type SessionEnv, session } from 'edge-session/hono'
import { cookieStore } from 'edge-session/stores/cookie'
import { memoryStore } from 'edge-session/stores/memory'
import { Hono } from 'hono'

const env = process.env
let app: Hono
if (env.SESSION_STORE === 'memory' || env.SESSION_STORE === 'cookie') {
  const sessions = createSessions<{ visits?: number }>({
    store: env.SESSION_STORE === 'cookie' ? cookieStore() : memoryStore(),
    secrets: [env.SESSION_SECRET ?? ''],
  })
  const withSession = new Hono<SessionEnv<{ visits?: number }>>()
  withSession.use(session(sessions))
  withSession.get('/api/session', (c) => {
    const s = c.get('session')
    const visits = (s.get('visits') ?? 0) + 1
    s.set('visits', visits)
    return c.json({ visits, user: null })
  })
  app = withSession as unknown as Hono
} else {
  app = new Hono()
  app.get('/api/session', (c) => c.json({ visits: 1, user: null }))
}

const server = serve(
  { fetch: app.fetch, port: Number(env.PORT ?? 3000), hostname: env.HOST ?? '127.0.0.1' },
  (info) =>
    console.log(
      `bench server (session: ${env.SESSION_STORE ?? 'none'}) listening on http://127.0.0.1:${info.port}`,
    ),
)
const stop = () => server.close(() => process.exit(0))
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
