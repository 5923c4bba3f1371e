/**
 * @module The subjects of the benchmark: one Hono app with the same routes (log in, read a counter, increment
 * it, log out), built with no session (the baseline), with edge-session on each store, and with each peer library.
 */

import { useSession, useSessionStorage } from '@hono/session'
import { createSessions, type ServerStore } from 'edge-session'
import { type SessionEnv, session } from 'edge-session/hono'
import { cookieStore } from 'edge-session/stores/cookie'
import { memoryStore } from 'edge-session/stores/memory'
import { upstashStore } from 'edge-session/stores/upstash'
import { type Context, Hono, type MiddlewareHandler } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import {
  CookieStore as HonoSessionsCookieStore,
  MemoryStore as HonoSessionsMemoryStore,
  type Session as HonoSessionsSession,
  sessionMiddleware,
} from 'hono-sessions'
import { getIronSession, type CookieJar as IronCookieJar } from 'iron-session'
import { type LocalUpstash, startLocalUpstash } from '../test/support/local-upstash.ts'
import { openSqlStores, type SqlServers } from './sql.ts'

/** What the counter app keeps in its session. */
export interface CounterData {
  user?: string
  count?: number
}

/** The library a subject runs on. */
export type Library = 'none' | 'edge-session' | '@hono/session' | 'hono-sessions' | 'iron-session'
/** Where its sessions live: peers are compared with edge-session on the same kind of store. */
export type StoreKind = 'none' | 'memory' | 'cookie' | 'upstash' | 'mysql' | 'postgres' | 'd1'

export interface Subject {
  /** Stable id, used in results and tests. */
  readonly id: string
  readonly library: Library
  readonly store: StoreKind
  /** As shown in the tables. */
  readonly label: string
  /** The app's `fetch`: every subject serves the same routes. */
  readonly fetch: (request: Request) => Response | Promise<Response>
}

export interface Subjects {
  readonly list: readonly Subject[]
  /** The local Upstash endpoint the Upstash subject talks to (its request counter gives the round trips). */
  readonly upstash: LocalUpstash
  close(): Promise<void>
}

/** Every subject's secret: a fixed 64-character string, long enough for every library. */
export const SECRET = 'bench-secret-0123456789abcdef0123456789abcdef0123456789abcdef0123'

/** Seconds without a request before a session ends, where a library has such a setting. */
const IDLE = 30 * 60
/** Seconds from creation, where a library has such a setting. */
const ABSOLUTE = 7 * 24 * 3600

/** What a library does in each route of the counter app. */
interface CounterRoutes {
  middleware: MiddlewareHandler[]
  login(c: Context): Promise<void> | void
  read(c: Context): Promise<number> | number
  increment(c: Context): Promise<number> | number
  logout(c: Context): Promise<void> | void
}

/** The counter app: identical routes for every subject, only the session calls differ. */
function counterApp(routes: CounterRoutes): Hono {
  const app = new Hono()
  for (const middleware of routes.middleware) app.use(middleware)
  app.post('/login', async (c) => {
    await routes.login(c)
    return c.text('ok')
  })
  app.get('/count', async (c) => c.text(String(await routes.read(c))))
  app.post('/count', async (c) => c.text(String(await routes.increment(c))))
  app.post('/logout', async (c) => {
    await routes.logout(c)
    return c.text('ok')
  })
  return app
}

/** The baseline: the same routes doing everything but the session. */
export function baselineApp(): Hono {
  return counterApp({
    middleware: [],
    login: () => {},
    read: () => 0,
    increment: () => 1,
    logout: () => {},
  })
}

/** edge-session's Hono middleware over `store` (a server store or the sealed cookie store), with `cookieCache`. */
export function edgeSessionApp(
  store: ServerStore | ReturnType<typeof cookieStore>,
  now?: () => number,
  cookieCache?: { maxAge: number },
): Hono {
  const sessions = createSessions<CounterData>({
    store,
    secrets: [SECRET],
    ...(now ? { now } : {}),
    ...(cookieCache ? { cookieCache } : {}),
  })
  const get = (c: Context) => (c as unknown as Context<SessionEnv<CounterData>>).get('session')
  return counterApp({
    middleware: [session(sessions) as unknown as MiddlewareHandler],
    login: (c) => {
      get(c).regenerate().set('user', 'ada')
    },
    read: (c) => get(c).get('count') ?? 0,
    increment: (c) => {
      const s = get(c)
      const count = (s.get('count') ?? 0) + 1
      s.set('count', count)
      return count
    },
    logout: (c) => get(c).destroy(),
  })
}

/** @hono/session: the session JWE-encrypted in the cookie, or (with `storage`) only its id, data in storage. */
function honoSessionApp(storage?: Map<string, CounterData>): Hono {
  interface HonoSession {
    get(): Promise<CounterData | null>
    update(data: CounterData | ((previous: CounterData | null) => CounterData)): Promise<void>
    delete(): void
  }
  const get = (c: Context) => c.get('session' as never) as HonoSession
  const middleware: MiddlewareHandler[] = []
  if (storage) {
    middleware.push(
      useSessionStorage({
        get: (sid: string) => storage.get(sid) ?? null,
        set: (sid: string, value: CounterData) => {
          storage.set(sid, value)
        },
        delete: (sid: string) => {
          storage.delete(sid)
        },
      }) as unknown as MiddlewareHandler,
    )
  }
  middleware.push(
    useSession({
      secret: SECRET,
      duration: { absolute: ABSOLUTE, inactivity: IDLE },
    }) as unknown as MiddlewareHandler,
  )
  return counterApp({
    middleware,
    login: (c) => get(c).update({ user: 'ada' }),
    read: async (c) => (await get(c).get())?.count ?? 0,
    increment: async (c) => {
      let count = 0
      await get(c).update((previous) => {
        count = (previous?.count ?? 0) + 1
        return { ...previous, count }
      })
      return count
    },
    logout: (c) => get(c).delete(),
  })
}

/** hono-sessions with its CookieStore (data sealed in the cookie) or MemoryStore (sealed id in the cookie). */
function honoSessionsApp(kind: 'cookie' | 'memory'): Hono {
  const store = kind === 'cookie' ? new HonoSessionsCookieStore() : new HonoSessionsMemoryStore()
  const get = (c: Context) => c.get('session' as never) as HonoSessionsSession<CounterData>
  return counterApp({
    middleware: [
      sessionMiddleware({
        store,
        // Required for its CookieStore, recommended for the others (README).
        encryptionKey: SECRET,
        expireAfterSeconds: IDLE,
        cookieOptions: { sameSite: 'Lax', path: '/', httpOnly: true },
      }) as unknown as MiddlewareHandler,
    ],
    login: (c) => {
      // Its way to give a session a new id (no effect with the CookieStore).
      if (kind === 'memory') c.set('session_key_rotation' as never, true as never)
      get(c).set('user', 'ada')
    },
    read: (c) => get(c).get('count') ?? 0,
    increment: (c) => {
      const s = get(c)
      const count = (s.get('count') ?? 0) + 1
      s.set('count', count)
      return count
    },
    logout: (c) => get(c).deleteSession(),
  })
}

/** iron-session through a cookie jar over Hono's cookie helpers, as its docs describe for other runtimes. */
function ironSessionApp(): Hono {
  const options = { cookieName: 'iron', password: SECRET, ttl: ABSOLUTE }
  const jar = (c: Context): IronCookieJar => ({
    read: (name) => getCookie(c, name),
    write: (name, value, cookie) => {
      const { sameSite, priority, expires, partitioned, ...rest } = cookie
      setCookie(c, name, value, {
        ...rest,
        ...(typeof expires === 'number' ? { expires: new Date(expires) } : expires ? { expires } : {}),
        ...(typeof sameSite === 'string' ? { sameSite: sameSite as 'Lax' } : {}),
        ...(partitioned ? { partitioned: true, secure: true } : {}),
      })
    },
  })
  const open = (c: Context) => getIronSession<CounterData>(jar(c), options)
  return counterApp({
    middleware: [],
    login: async (c) => {
      const s = await open(c)
      s.user = 'ada'
      await s.save()
    },
    read: async (c) => (await open(c)).count ?? 0,
    increment: async (c) => {
      const s = await open(c)
      const count = (s.count ?? 0) + 1
      s.count = count
      await s.save()
      return count
    },
    logout: async (c) => (await open(c)).destroy(),
  })
}

/**
 * Builds every subject. The Upstash subject talks to a throwaway redis-server through the local Upstash REST
 * endpoint, both started here and stopped by `close()`. With `sql` (servers the caller started and stops), the
 * MySQL, PostgreSQL and D1 (Miniflare, in this process) subjects too.
 */
export async function createSubjects(sql?: SqlServers): Promise<Subjects> {
  const upstash = await startLocalUpstash()
  let stores: Awaited<ReturnType<typeof openSqlStores>> | undefined
  try {
    stores = sql ? await openSqlStores(sql, 'bench_sessions') : undefined
  } catch (error) {
    await upstash.stop()
    throw error
  }
  const subject = (id: string, library: Library, store: StoreKind, label: string, app: Hono): Subject => ({
    id,
    library,
    store,
    label,
    fetch: app.fetch,
  })
  const list = [
    subject('baseline', 'none', 'none', 'no session (baseline)', baselineApp()),
    subject('edge-memory', 'edge-session', 'memory', 'edge-session, memory', edgeSessionApp(memoryStore())),
    subject(
      'edge-cookie',
      'edge-session',
      'cookie',
      'edge-session, sealed cookie',
      edgeSessionApp(cookieStore()),
    ),
    subject(
      'edge-upstash',
      'edge-session',
      'upstash',
      'edge-session, Upstash (local endpoint)',
      edgeSessionApp(upstashStore({ redis: upstash.client(), prefix: 'bench:' })),
    ),
    ...(stores
      ? [
          subject(
            'edge-mysql',
            'edge-session',
            'mysql',
            'edge-session, MySQL (MariaDB, loopback)',
            edgeSessionApp(stores.mysql.store),
          ),
          subject(
            'edge-postgres',
            'edge-session',
            'postgres',
            'edge-session, PostgreSQL (loopback)',
            edgeSessionApp(stores.postgres.store),
          ),
          subject(
            'edge-d1',
            'edge-session',
            'd1',
            'edge-session, D1 (Miniflare)',
            edgeSessionApp(stores.d1.store),
          ),
        ]
      : []),
    subject(
      'hono-session-memory',
      '@hono/session',
      'memory',
      '@hono/session, memory storage',
      honoSessionApp(new Map()),
    ),
    subject('hono-session-cookie', '@hono/session', 'cookie', '@hono/session, cookie', honoSessionApp()),
    subject(
      'hono-sessions-memory',
      'hono-sessions',
      'memory',
      'hono-sessions, MemoryStore',
      honoSessionsApp('memory'),
    ),
    subject(
      'hono-sessions-cookie',
      'hono-sessions',
      'cookie',
      'hono-sessions, CookieStore',
      honoSessionsApp('cookie'),
    ),
    subject('iron-session', 'iron-session', 'cookie', 'iron-session', ironSessionApp()),
  ]
  return {
    list,
    upstash,
    close: async () => {
      await Promise.all([upstash.stop(), stores?.close()])
    },
  }
}
