/**
 * @module The demo app on Node (`npm start`), also run unchanged by Bun.
 *
 * Environment: PORT (default 3000), SESSION_SECRET (at least 32 characters), SESSION_STORE=cookie to seal the
 * session into the cookie itself instead of keeping it in memory. UPSTASH_REDIS_REST_URL and
 * UPSTASH_REDIS_REST_TOKEN keep sessions in Upstash Redis, shared with every instance and runtime. REDIS_URL
 * (redis://127.0.0.1:6379), or REDIS_SENTINELS (host:port,host:port) with REDIS_MASTER_NAME, keep sessions in
 * your own Redis (ioredis). DATABASE_URL=postgres://... keeps sessions in PostgreSQL (postgres.js), and
 * DATABASE_URL=mysql://user:password@host:3306/db in MySQL or MariaDB (mysql2): the table is created at start,
 * and expired rows are pruned every minute.
 */

import { serve } from '@hono/node-server'
import { createSessions, type SessionStore } from 'edge-session'
import { cookieStore } from 'edge-session/stores/cookie'
import { memoryStore } from 'edge-session/stores/memory'
import { postgresStore } from 'edge-session/stores/postgres'
import { redisStore } from 'edge-session/stores/redis'
import { upstashStore } from 'edge-session/stores/upstash'
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

/** The store the environment asks for: a sealed cookie, Upstash, Redis, else memory. */
async function chooseStore(): Promise<{ store: SessionStore; storeName: string }> {
  if (env.SESSION_STORE === 'cookie') return { store: cookieStore(), storeName: 'sealed cookie' }
  if (env.UPSTASH_REDIS_REST_URL && env.UPSTASH_REDIS_REST_TOKEN) {
    // Loaded only when asked for, like ioredis below: @upstash/redis is an optional peer dependency.
    const { Redis } = await import('@upstash/redis')
    const redis = new Redis({ url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN })
    return { store: upstashStore({ redis }), storeName: 'Upstash Redis' }
  }
  if (/^postgres(ql)?:\/\//.test(env.DATABASE_URL ?? '')) return postgresFromEnv(env.DATABASE_URL ?? '')
  if (env.REDIS_URL || env.REDIS_SENTINELS) {
    // Loaded only when asked for: the other stores need no ioredis installed.
    const { Redis } = await import('ioredis')
    // Fail fast while Redis is unreachable (the request gets a 503), and never replay a write later.
    const options = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: 2_000,
      retryStrategy: () => 200,
    }
    const sentinels = env.REDIS_SENTINELS?.split(',').map((address) => {
      const [host = '', port = '26379'] = address.trim().split(':')
      return { host, port: Number(port) }
    })
    const client = sentinels
      ? new Redis({
          ...options,
          sentinels,
          name: env.REDIS_MASTER_NAME ?? 'mymaster',
          sentinelRetryStrategy: () => 200,
        })
      : new Redis(env.REDIS_URL ?? '', options)
    client.on('error', (error: Error) => console.warn(`redis: ${error.message}`))
    await client.connect()
    return { store: redisStore({ client }), storeName: sentinels ? 'Redis (Sentinel)' : 'Redis' }
  }
  if (env.DATABASE_URL?.startsWith('mysql://')) {
    // Loaded only when asked for: mysql2 is an optional peer dependency.
    const { createPool } = await import('mysql2/promise')
    const { mysqlStore } = await import('edge-session/stores/mysql')
    const store = mysqlStore({ pool: createPool({ uri: env.DATABASE_URL, connectTimeout: 2_000 }) })
    await store.migrate()
    setInterval(
      () => store.prune().catch((error: Error) => console.warn(`prune: ${error.message}`)),
      60_000,
    ).unref()
    return { store, storeName: 'MySQL' }
  }
  return { store: memoryStore(), storeName: 'memory' }
}

/** PostgreSQL through postgres.js: the table made at start (idempotent), expired rows pruned every minute. */
async function postgresFromEnv(url: string): Promise<{ store: SessionStore; storeName: string }> {
  // Loaded only when asked for: postgres is an optional peer dependency.
  const { default: postgres } = await import('postgres')
  // Connect attempts give up within storeTimeout, so a request gets a 503 while the database is unreachable.
  const store = postgresStore({ sql: postgres(url, { connect_timeout: 2, onnotice: () => {} }) })
  await store.migrate()
  const prune = () => store.prune().catch((error: Error) => console.warn(`postgres prune: ${error.message}`))
  setInterval(prune, 60_000).unref()
  return { store, storeName: 'PostgreSQL' }
}

const { store, storeName } = await chooseStore()
const sessions = createSessions<DemoData>({ store, secrets: [secret] })
const app = createDemoApp(sessions, { runtime, store: storeName })

const server = serve({ fetch: app.fetch, port, hostname: env.HOST ?? '127.0.0.1' }, (info) => {
  console.log(`edge-session demo (${runtime}, ${storeName} store) listening on http://localhost:${info.port}`)
})

const stop = () => server.close(() => process.exit(0))
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
