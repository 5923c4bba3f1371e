/**
 * @module The demo app every example serves (Node, Deno, Bun, Cloudflare Workers): a visit counter with log in,
 * log out and a flash message, as an HTML page and as a JSON API.
 */

import type { Sessions } from 'edge-session'
import { type SessionEnv, session } from 'edge-session/hono'
import { Hono, type MiddlewareHandler } from 'hono'

export interface DemoData {
  visits?: number
  user?: string
  welcome?: string
}

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

  app.get('/', (c) => {
    const s = c.get('session')
    const visits = countVisit(s)
    const user = s.get('user') ?? null
    const welcome = s.get('welcome')
    return c.html(page({ visits, user, welcome, ...options }))
  })

  app.get('/api/session', (c) => {
    const s = c.get('session')
    const visits = countVisit(s)
    return c.json({ visits, user: s.get('user') ?? null })
  })

  app.post('/api/login', async (c) => {
    const user = await readUser(c.req.raw)
    if (!user) return c.json({ error: 'Send a user name of 1 to 64 characters in the field "user"' }, 400)
    const s = c.get('session')
    // New privileges, new id: a session id planted before login (fixation) is worthless after it.
    s.regenerate({ renew: true })
    s.set('user', user)
    s.flash('welcome', `Welcome, ${user}!`)
    return answer(c.req.raw, { user })
  })

  app.post('/api/logout', (c) => {
    c.get('session').destroy()
    return answer(c.req.raw, { user: null })
  })

  return app

  function answer(request: Request, body: { user: string | null }): Response {
    if (wantsJson(request)) return Response.json(body)
    return new Response(null, { status: 303, headers: { Location: '/' } })
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

async function readUser(request: Request): Promise<string | null> {
  let user: unknown
  try {
    const type = request.headers.get('content-type') ?? ''
    if (type.includes('application/json')) user = ((await request.json()) as { user?: unknown } | null)?.user
    else user = (await request.formData()).get('user')
  } catch {
    return null
  }
  if (typeof user !== 'string') return null
  const trimmed = user.trim()
  return trimmed.length > 0 && trimmed.length <= 64 ? trimmed : null
}

/** JSON for API clients; a redirect for a browser's form post. */
function wantsJson(request: Request): boolean {
  const accept = request.headers.get('accept') ?? ''
  if (accept.includes('application/json')) return true
  const type = request.headers.get('content-type') ?? ''
  return !(type.includes('application/x-www-form-urlencoded') || type.includes('multipart/form-data'))
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`)
}

function page(view: {
  visits: number
  user: string | null
  welcome: string | undefined
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
    <footer>Served by ${escapeHtml(view.runtime)} with the ${escapeHtml(view.store)} store. The session cookie is
      HttpOnly: no script on this page can read it.</footer>
  </main>
</body>
</html>`
}
