/**
 * @module The demo app every example serves (Node, Deno, Bun, Cloudflare Workers): a visit counter with log in,
 * log out, a flash message and the logged-in user's devices (revoke one, or every other), as an HTML page and as
 * a JSON API.
 */

import { isSessionError, type Session, type Sessions, type UserSession } from 'edge-session'
import { type SessionEnv, session } from 'edge-session/hono'
import { Hono, type MiddlewareHandler } from 'hono'

export interface DemoData {
  visits?: number
  welcome?: string
}

/** A device in `GET /api/sessions`: a live session of the user, `current` for the request's own. */
export type DemoDevice = UserSession & { current: boolean }

export interface DemoOptions {
  /** Shown on the page and in the `X-Served-By` header: 'node', 'deno', 'bun', 'workerd'. */
  runtime: string
  /** The store in use, shown on the page. */
  store: string
}

type DemoEnv = SessionEnv<DemoData> & { Bindings: Record<string, unknown> }

/**
 * The demo app.
 * @param sessions The app's sessions, or a function of the Workers bindings returning them (Workers pass secrets
 * and namespaces per request).
 */
export function createDemoApp(
  sessions: Sessions<DemoData> | ((env: Record<string, unknown>) => Sessions<DemoData>),
  options: DemoOptions,
): Hono<DemoEnv> {
  const app = new Hono<DemoEnv>()
  app.use(async (c, next) => {
    await next()
    c.header('X-Served-By', options.runtime)
  })
  app.use(sameOriginPosts)
  app.use(sessionMiddleware(sessions))
  const sessionsOf = (env: Record<string, unknown> | undefined) =>
    typeof sessions === 'function' ? sessions(env ?? {}) : sessions

  app.get('/', async (c) => {
    const s = c.get('session')
    const visits = countVisit(s)
    const welcome = s.get('welcome')
    const devices = await devicesOf(sessionsOf(c.env), s, c.env)
    return c.html(page({ visits, user: s.userId, welcome, devices, ...options }))
  })

  app.get('/api/session', (c) => {
    const s = c.get('session')
    const visits = countVisit(s)
    return c.json({ visits, user: s.userId })
  })

  app.post('/api/login', async (c) => {
    const user = await readField(c.req.raw, 'user')
    if (!user) return c.json({ error: 'Send a user name of 1 to 64 characters in the field "user"' }, 400)
    const s = c.get('session')
    // Binds the session to the user with a new id (a session id planted before login is worthless after it),
    // and lists it among the user's devices.
    s.setUser(user)
    s.flash('welcome', `Welcome, ${user}!`)
    return answer(c.req.raw, { user })
  })

  app.post('/api/logout', (c) => {
    c.get('session').destroy()
    return answer(c.req.raw, { user: null })
  })

  app.get('/api/sessions', async (c) => {
    const devices = await devicesOf(sessionsOf(c.env), c.get('session'), c.env)
    if (devices === null) return c.json({ error: 'This store keeps no sessions per user' }, 501)
    return c.json({ sessions: devices })
  })

  app.post('/api/sessions/revoke', async (c) => {
    const s = c.get('session')
    if (s.userId === null) return c.json({ error: 'Log in first' }, 401)
    const handle = await readField(c.req.raw, 'handle')
    if (!handle) return c.json({ error: 'Send the handle of a session in the field "handle"' }, 400)
    const revoked = await sessionsOf(c.env).revokeUserSession(s.userId, handle, c.env)
    return answer(c.req.raw, { revoked })
  })

  app.post('/api/sessions/revoke-others', async (c) => {
    const s = c.get('session')
    if (s.userId === null) return c.json({ error: 'Log in first' }, 401)
    const revoked = await sessionsOf(c.env).revokeUserSessions(s.userId, { except: s.handle }, c.env)
    return answer(c.req.raw, { revoked })
  })

  return app

  function answer(request: Request, body: object): Response {
    if (wantsJson(request)) return Response.json(body)
    return new Response(null, { status: 303, headers: { Location: '/' } })
  }
}

/** The logged-in user's live sessions, this one marked; [] when anonymous, null where the store has no index. */
async function devicesOf(
  sessions: Sessions<DemoData>,
  s: Session<DemoData>,
  env: unknown,
): Promise<DemoDevice[] | null> {
  if (s.userId === null) return []
  try {
    const list = await sessions.listUserSessions(s.userId, env)
    return list.map((device) => ({ ...device, current: device.handle === s.handle }))
  } catch (error) {
    if (isSessionError(error, 'ERR_UNSUPPORTED')) return null
    throw error
  }
}

/**
 * Refuses state-changing requests that a browser marks as cross-site. SameSite=Lax already keeps the cookie off
 * cross-site posts; this also stops a cross-site form logging a visitor in or out. Browsers send `Origin` with
 * every POST; API clients that send none (curl, servers) are let through.
 */
const sameOriginPosts: MiddlewareHandler<DemoEnv> = async (c, next) => {
  if (c.req.method !== 'GET' && c.req.method !== 'HEAD') {
    const origin = c.req.header('origin')
    const crossSite = c.req.header('sec-fetch-site') === 'cross-site'
    if (crossSite || (origin !== undefined && origin !== new URL(c.req.url).origin)) {
      return c.json({ error: 'Cross-site request refused' }, 403)
    }
  }
  await next()
}

function sessionMiddleware(
  sessions: Sessions<DemoData> | ((env: Record<string, unknown>) => Sessions<DemoData>),
): MiddlewareHandler<DemoEnv> {
  if (typeof sessions !== 'function') return session<DemoData, DemoEnv>(sessions)
  const middlewares = new WeakMap<Sessions<DemoData>, MiddlewareHandler<DemoEnv>>()
  return (c, next) => {
    const current = sessions(c.env ?? {})
    let middleware = middlewares.get(current)
    if (!middleware) {
      middleware = session<DemoData, DemoEnv>(current)
      middlewares.set(current, middleware)
    }
    return middleware(c, next)
  }
}

function countVisit(s: {
  get(key: 'visits'): number | undefined
  set(key: 'visits', value: number): unknown
}) {
  const visits = (s.get('visits') ?? 0) + 1
  s.set('visits', visits)
  return visits
}

/** A field of a JSON or form body: a string of 1 to 64 characters once trimmed, or null. */
async function readField(request: Request, field: string): Promise<string | null> {
  let value: unknown
  try {
    const type = request.headers.get('content-type') ?? ''
    if (type.includes('application/json'))
      value = ((await request.json()) as Record<string, unknown> | null)?.[field]
    else value = (await request.formData()).get(field)
  } catch {
    return null
  }
  if (typeof value !== 'string') return null
  const trimmed = value.trim()
  return trimmed.length > 0 && trimmed.length <= 64 ? trimmed : null
}

/** JSON for API clients; a redirect for a browser's form post. */
function wantsJson(request: Request): boolean {
  const accept = request.headers.get('accept') ?? ''
  if (accept.includes('application/json')) return true
  const type = request.headers.get('content-type') ?? ''
  return !(type.includes('application/x-www-form-urlencoded') || type.includes('multipart/form-data'))
}

/** The user's devices with a revoke button each (not this one), and one to log out the others. */
function deviceList(devices: DemoDevice[] | null): string {
  if (devices === null)
    return '<p class="lead">This store keeps no device list (sessions sealed in cookies).</p>'
  const items = devices
    .map((device) => {
      const name = escapeHtml(device.label ?? device.userAgent ?? 'Unknown device')
      const seen = new Date(device.lastSeenAt).toISOString().replace('T', ' ').slice(0, 16)
      const action = device.current
        ? '<span class="here">this device</span>'
        : `<form method="post" action="/api/sessions/revoke"><input type="hidden" name="handle" value="${escapeHtml(device.handle)}"><button class="quiet" type="submit">Revoke</button></form>`
      return `<li class="device" data-handle="${escapeHtml(device.handle)}"><span>${name}<small>last seen ${seen} UTC</small></span>${action}</li>`
    })
    .join('')
  const others = devices.some((device) => !device.current)
    ? '<form method="post" action="/api/sessions/revoke-others"><button class="quiet" type="submit">Log out other devices</button></form>'
    : ''
  return `<section><h2>Your devices</h2><ul class="devices" id="devices">${items}</ul>${others}</section>`
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`)
}

function page(view: {
  visits: number
  user: string | null
  welcome: string | undefined
  devices: DemoDevice[] | null
  runtime: string
  store: string
}): string {
  const flash = view.welcome ? `<p class="flash" role="status">${escapeHtml(view.welcome)}</p>` : ''
  // #visits and #user are what the tests read; a logged-out page has no #user.
  const who = view.user
    ? `<strong id="user">${escapeHtml(view.user)}</strong>`
    : '<strong class="none">nobody</strong>'
  const account = view.user
    ? `<form method="post" action="/api/logout"><button type="submit">Log out</button></form>`
    : `<form method="post" action="/api/login">
        <label for="name">Name</label>
        <input id="name" name="user" required maxlength="64" autocomplete="username" placeholder="ada">
        <button type="submit">Log in</button>
      </form>`
  const devices = view.user ? deviceList(view.devices) : ''
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>edge-session demo</title>
<style>
*{box-sizing:border-box}
body{margin:0;background:#f3f5f8;color:#1f2933;font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif}
main{max-width:34rem;margin:3rem auto;padding:1.75rem 2rem;background:#fff;border:1px solid #e1e5eb;
  border-radius:14px;box-shadow:0 2px 8px rgba(15,23,42,.06)}
h1{font-size:1.4rem;margin:0}
.lead{color:#5f6b7a;margin:.25rem 0 1.5rem}
.flash{background:#e7f5ec;border:1px solid #9fd3b0;color:#1d4d2c;padding:.65rem 1rem;border-radius:8px;margin:0 0 1.25rem}
.facts{display:grid;grid-template-columns:1fr 1fr;gap:.75rem;margin:0 0 1.5rem}
.fact{margin:0;padding:.8rem 1rem;border:1px solid #e1e5eb;border-radius:10px;color:#5f6b7a;font-size:.9rem}
.fact strong{display:block;color:#1f2933;font-size:1.6rem;line-height:1.3;overflow-wrap:anywhere}
.fact strong.none{color:#9aa5b1}
form{display:flex;gap:.5rem;align-items:center;margin:0}
label{color:#5f6b7a}
input{flex:1;min-width:0;font:inherit;padding:.45rem .7rem;border:1px solid #c7cdd4;border-radius:8px}
button{font:inherit;padding:.45rem 1.1rem;border:0;border-radius:8px;background:#1565c0;color:#fff;cursor:pointer}
button:hover{background:#0d4f9c}
.devices{margin:0 0 1rem;padding:0;list-style:none;border-top:1px solid #eef0f3}
section h2{font-size:1rem;margin:1.5rem 0 .25rem}
.device{display:flex;justify-content:space-between;align-items:center;gap:1rem;padding:.5rem 0;border-bottom:1px solid #eef0f3}
.device small{display:block;color:#7b8794}
.device .here{color:#1d4d2c;font-size:.85rem;white-space:nowrap}
button.quiet{background:#eef0f3;color:#1f2933}
button.quiet:hover{background:#dde2e8}
footer{color:#7b8794;font-size:.85rem;margin-top:1.5rem;padding-top:1rem;border-top:1px solid #eef0f3}
</style></head>
<body>
  <main>
    <h1>edge-session demo</h1>
    <p class="lead">Your session, as this server keeps it: reload to count a visit, log in for a new session id
      and a welcome shown once.</p>
    ${flash}
    <div class="facts">
      <p class="fact">Visits in this session: <strong id="visits">${view.visits}</strong></p>
      <p class="fact">Logged in as ${who}</p>
    </div>
    ${account}
    ${devices}
    <footer>Served by ${escapeHtml(view.runtime)} with the ${escapeHtml(view.store)} store. The session cookie is
      HttpOnly: no script on this page can read it.</footer>
  </main>
</body>
</html>`
}
