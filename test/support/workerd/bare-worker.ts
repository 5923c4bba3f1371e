/**
 * @module A Worker importing every runtime-neutral entry point, for workerd without `nodejs_compat` (no Node
 * globals, no `node:` modules): each store keeps a visit count through the Hono middleware, at `/<store>`.
 */

import { Redis } from '@upstash/redis/cloudflare'
import { createSessions, type SessionStore } from 'edge-session'
import { type SessionEnv, session } from 'edge-session/hono'
import { cloudflareKvStore, type KvNamespace } from 'edge-session/stores/cloudflare-kv'
import { cookieStore } from 'edge-session/stores/cookie'
import { durableObjectStore, type SessionObjectNamespace } from 'edge-session/stores/durable-object'
import { memoryStore } from 'edge-session/stores/memory'
import { upstashStore } from 'edge-session/stores/upstash'
import { Hono } from 'hono'

// The class wrangler.toml binds to SESSION_OBJECTS: a Worker built with that configuration must export it.
export { SessionObject } from 'edge-session/stores/durable-object'

interface Bindings {
  SESSIONS: KvNamespace
  SESSION_OBJECTS: SessionObjectNamespace
}
type AppEnv = SessionEnv<{ visits?: number }> & { Bindings: Bindings }

const SECRET = 'bare-workerd-secret-0123456789abcdefghij'

function countingApp(store: SessionStore) {
  const app = new Hono<AppEnv>()
  app.use(session<{ visits?: number }, AppEnv>(createSessions({ store, secrets: [SECRET] })))
  app.get('*', (c) => {
    const s = c.get('session')
    const visits = (s.get('visits') ?? 0) + 1
    s.set('visits', visits)
    return c.json({ visits })
  })
  return app
}

const apps: Record<string, Hono<AppEnv>> = {
  memory: countingApp(memoryStore()),
  cookie: countingApp(cookieStore()),
  'cloudflare-kv': countingApp(cloudflareKvStore({ namespace: (env: Bindings) => env.SESSIONS })),
  'durable-object': countingApp(durableObjectStore({ namespace: (env: Bindings) => env.SESSION_OBJECTS })),
}

export default {
  fetch(request: Request, env: Bindings): Response | Promise<Response> {
    const { pathname } = new URL(request.url)
    if (pathname === '/globals') {
      const g = globalThis as Record<string, unknown>
      // Creating the Upstash store sends nothing: it shows the module loads and runs here.
      const upstash = upstashStore({
        redis: new Redis({ url: 'https://upstash.invalid', token: 'unused' }),
      }).name
      return Response.json({ Buffer: typeof g.Buffer, process: typeof g.process, upstash })
    }
    const app = apps[pathname.split('/')[1] ?? '']
    return app ? app.fetch(request, env) : new Response('Not found', { status: 404 })
  },
}
