/**
 * @module A second Worker in the workerd test project, bound to the main Worker's `SessionObject` class: the same
 * Durable Objects reached from another Worker, as two Workers (or two locations) of one app reach them. Bundled by
 * vitest.config.ts; the tests call it through the `SECOND` service binding.
 *
 * `POST /set/<key>` sets `<key>` to the request body in the session the cookie names, and answers its id;
 * `POST /logout` destroys that session.
 */
import { createSessions } from '../../../src/index.ts'
import { durableObjectStore, type SessionObjectNamespace } from '../../../src/stores/durable-object.ts'

interface Env {
  SESSION_OBJECTS: SessionObjectNamespace
}

/** The same secret and prefix as test/stores/durable-object/durable-object-bindings.ts. */
const SECRET = 'durable-object-secret-0123456789abcdefghij'

const sessions = createSessions<Record<string, unknown>>({
  store: durableObjectStore({ namespace: (env: Env) => env.SESSION_OBJECTS, prefix: 'two-workers:' }),
  secrets: [SECRET],
})

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const [, action, key = ''] = new URL(request.url).pathname.split('/')
    if (action === 'set') {
      const session = await sessions.load(request, env)
      session.set(key, await request.text())
      return sessions.commit(session, new Response(session.id))
    }
    if (action === 'logout') {
      const session = await sessions.load(request, env)
      session.destroy()
      return sessions.commit(session, new Response('bye'))
    }
    return new Response('Not found', { status: 404 })
  },
}
