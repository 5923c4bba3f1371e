/**
 * @module The demo app as a Cloudflare Worker: sessions in Workers KV (binding `SESSIONS`), or in Upstash Redis
 * when `UPSTASH_REDIS_REST_URL` and `UPSTASH_REDIS_REST_TOKEN` are set.
 */

import { Redis } from '@upstash/redis/cloudflare'
import { createSessions, isSessionError, type Sessions } from 'edge-session'
import { cloudflareKvStore } from 'edge-session/stores/cloudflare-kv'
import { upstashStore } from 'edge-session/stores/upstash'
import { createDemoApp, type DemoData } from '../shared/app.ts'

/** The bindings declared in wrangler.toml, and the secrets from `.dev.vars` or `wrangler secret put`. */
export type Env = {
  SESSIONS: KVNamespace
  /** At least 32 characters: `openssl rand -base64 32`. */
  SESSION_SECRET?: string
  UPSTASH_REDIS_REST_URL?: string
  UPSTASH_REDIS_REST_TOKEN?: string
}

type DemoApp = ReturnType<typeof createDemoApp>

/**
 * Secrets arrive with each request's `env`, not at module load, so the app is built on the first request and
 * kept for as long as the configuration it was built from stays the same (one isolate serves many requests).
 */
let built: { config: string; app: DemoApp } | undefined

function appFor(env: Env): DemoApp {
  const upstash = env.UPSTASH_REDIS_REST_URL && env.UPSTASH_REDIS_REST_TOKEN
  const config = JSON.stringify([
    env.SESSION_SECRET,
    upstash && env.UPSTASH_REDIS_REST_URL,
    upstash && env.UPSTASH_REDIS_REST_TOKEN,
  ])
  if (built?.config !== config) {
    const sessions: Sessions<DemoData> = createSessions<DemoData>({
      store: upstash
        ? upstashStore({
            redis: new Redis({ url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN }),
          })
        : // The binding comes from each call's env: sessions.load(request, env), which the Hono middleware does.
          cloudflareKvStore({ namespace: (bindings: Env) => bindings.SESSIONS }),
      secrets: env.SESSION_SECRET ?? '',
    })
    const app = createDemoApp(sessions, {
      runtime: 'workerd',
      store: upstash ? 'Upstash Redis' : 'Cloudflare KV',
    })
    built = { config, app }
  }
  return built.app
}

export default {
  fetch(request, env, ctx) {
    let app: DemoApp
    try {
      app = appFor(env)
    } catch (error) {
      if (!isSessionError(error, 'ERR_CONFIG')) throw error
      // A missing or short SESSION_SECRET: say so in the logs (`wrangler dev`, `wrangler tail`), not to visitors.
      console.error(
        `edge-session: ${error.message}. Set SESSION_SECRET in .dev.vars or with wrangler secret put.`,
      )
      return new Response('Server misconfigured', { status: 500 })
    }
    return app.fetch(request, env, ctx)
  },
} satisfies ExportedHandler<Env>
