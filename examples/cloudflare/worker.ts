/**
 * @module The demo app as a Cloudflare Worker: sessions in Workers KV (binding `SESSIONS`), in Cloudflare D1
 * (binding `DB`) when `SESSION_STORE=d1`, in Durable Objects (binding `SESSION_OBJECTS`) when
 * `SESSION_STORE=durable-object`, or in Upstash Redis when `UPSTASH_REDIS_REST_URL` and
 * `UPSTASH_REDIS_REST_TOKEN` are set.
 */

import { Redis } from '@upstash/redis/cloudflare'
import { createSessions, isSessionError, type Sessions } from 'edge-session'
import { cloudflareKvStore } from 'edge-session/stores/cloudflare-kv'
import { d1Store } from 'edge-session/stores/d1'
import { durableObjectStore, type SessionObject } from 'edge-session/stores/durable-object'
import { upstashStore } from 'edge-session/stores/upstash'
import { createDemoApp, type DemoData } from '../shared/app.ts'

// The class the SESSION_OBJECTS binding names (wrangler.toml): Wrangler binds the Worker's own export.
export { SessionObject } from 'edge-session/stores/durable-object'

/** The bindings declared in wrangler.toml, and the secrets from `.dev.vars` or `wrangler secret put`. */
export type Env = {
  SESSIONS: KVNamespace
  DB: D1Database
  SESSION_OBJECTS: DurableObjectNamespace<SessionObject>
  /** `d1` keeps sessions in D1 (binding `DB`), `durable-object` in Durable Objects, instead of KV. */
  SESSION_STORE?: string
  /** At least 32 characters: `openssl rand -base64 32`. */
  SESSION_SECRET?: string
  UPSTASH_REDIS_REST_URL?: string
  UPSTASH_REDIS_REST_TOKEN?: string
}

type DemoApp = ReturnType<typeof createDemoApp>

/** The D1 store: its binding comes from each call's env, like KV's. */
const d1 = d1Store({ database: (bindings: Env) => bindings.DB })

/**
 * The example's setup for D1: the sessions table is created (if missing) before this isolate's first request.
 * `migrate()` is idempotent and safe from several isolates at once; a failure is retried by the next request.
 * (`npx wrangler d1 migrations apply DB` applies the same SQL from migrations/.)
 */
let migrated: Promise<void> | undefined

function migrateOnce(env: Env): Promise<void> {
  migrated ??= d1.migrate(env).catch((error: unknown) => {
    migrated = undefined
    throw error
  })
  return migrated
}

/**
 * Secrets arrive with each request's `env`, not at module load, so the app is built on the first request and
 * kept for as long as the configuration it was built from stays the same (one isolate serves many requests).
 */
let built: { config: string; app: DemoApp } | undefined

function appFor(env: Env): DemoApp {
  const upstash = env.UPSTASH_REDIS_REST_URL && env.UPSTASH_REDIS_REST_TOKEN
  const useD1 = !upstash && env.SESSION_STORE === 'd1'
  const useObjects = !upstash && env.SESSION_STORE === 'durable-object'
  const config = JSON.stringify([
    env.SESSION_SECRET,
    useD1,
    useObjects,
    upstash && env.UPSTASH_REDIS_REST_URL,
    upstash && env.UPSTASH_REDIS_REST_TOKEN,
  ])
  if (built?.config !== config) {
    const sessions: Sessions<DemoData> = createSessions<DemoData>({
      store: upstash
        ? upstashStore({
            redis: new Redis({ url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN }),
          })
        : useD1
          ? d1
          : useObjects
            ? durableObjectStore({ namespace: (bindings: Env) => bindings.SESSION_OBJECTS })
            : // The binding comes from each call's env: sessions.load(request, env), which the Hono middleware does.
              cloudflareKvStore({ namespace: (bindings: Env) => bindings.SESSIONS }),
      secrets: env.SESSION_SECRET ?? '',
    })
    const app = createDemoApp(sessions, {
      runtime: 'workerd',
      store: upstash
        ? 'Upstash Redis'
        : useD1
          ? 'Cloudflare D1'
          : useObjects
            ? 'Cloudflare Durable Objects'
            : 'Cloudflare KV',
    })
    built = { config, app }
  }
  return built.app
}

const usesD1 = (env: Env) =>
  env.SESSION_STORE === 'd1' && !(env.UPSTASH_REDIS_REST_URL && env.UPSTASH_REDIS_REST_TOKEN)

export default {
  async fetch(request, env, ctx) {
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
    if (usesD1(env)) {
      try {
        await migrateOnce(env)
      } catch (error) {
        console.error(`edge-session: creating the D1 sessions table failed: ${String(error)}`)
        return new Response('Service unavailable', { status: 503 })
      }
    }
    return app.fetch(request, env, ctx)
  },

  // A Cron Trigger (wrangler.toml [triggers]): D1 keeps expired rows until they are pruned, a bounded batch a run.
  async scheduled(_controller, env) {
    if (usesD1(env)) await d1.prune({ limit: 1000 }, env)
  },
} satisfies ExportedHandler<Env>
