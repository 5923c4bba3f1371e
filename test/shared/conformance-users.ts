/**
 * @module The conformance suite's sessions-per-user part: setUser, listing, revocation, counting users, the
 * per-user limit, through `createSessions` as an app sees them. Registered by `describeStoreConformance`.
 */

import { createSessions, type Session, type SessionStore, type SessionsOptions } from 'edge-session'
import { describe, expect, it } from 'vitest'
import { type CountingStore, countingStore } from '../support/counting-store.ts'
import { CookieJar, manualClock } from '../support/jar.ts'

export interface UserSuiteOptions {
  kind: 'server' | 'cookie'
  createStore: () => SessionStore | Promise<SessionStore>
  env: () => unknown
  /** False: the store has no per-user index, and the per-user calls must say so. */
  supported: boolean
  /** The sessions keep a cookie cache: checks of a revocation made elsewhere then load fresh. */
  cookieCache?: { maxAge: number }
}

const SECRET = 'conformance-secret-0123456789abcdefghijklmnop'
const IDLE = 600
const ABSOLUTE = 3600
const TOUCH = 60

type Data = Record<string, unknown>

export function describeUserSessions(options: UserSuiteOptions): void {
  const env = options.env
  /** For a load that checks a revocation made elsewhere: a cached copy would see it only within its maxAge. */
  const FRESH = options.cookieCache ? { fresh: true } : undefined

  async function setup(
    extra: Partial<SessionsOptions> = {},
    wrap: (store: CountingStore) => CountingStore = (store) => store,
  ) {
    const inner = await options.createStore()
    const store = inner.kind === 'cookie' ? inner : wrap(countingStore(inner))
    const clock = manualClock()
    const sessions = createSessions<Data>({
      store,
      secrets: [SECRET],
      idleTimeout: IDLE,
      absoluteTimeout: ABSOLUTE,
      touchInterval: TOUCH,
      now: clock.now,
      ...(options.cookieCache ? { cookieCache: options.cookieCache } : {}),
      ...extra,
    })
    const calls = store.kind === 'cookie' ? [] : (store as CountingStore).calls
    /** One request from `jar` (as a browser with `agent`): load, handle, commit, keep the cookies. */
    async function visit<T>(
      jar: CookieJar,
      handle: (s: Session<Data>) => T,
      agent = 'TestBrowser/1.0',
      load?: { fresh: boolean },
    ) {
      const session = await sessions.load(
        jar.request('https://app.example/', { headers: { 'user-agent': agent } }),
        env(),
        load,
      )
      const result = handle(session)
      const response = await sessions.commit(session, new Response('ok'))
      jar.update(response)
      return { session, result, response }
    }
    async function login(userId: string, agent = 'TestBrowser/1.0', label?: string) {
      const jar = new CookieJar()
      await visit(jar, (s) => s.set('visits', 1))
      const { session } = await visit(
        jar,
        (s) => s.setUser(userId, label === undefined ? {} : { label }),
        agent,
      )
      return { jar, session }
    }
    return { sessions, clock, calls, visit, login, inner }
  }

  if (options.kind === 'server' && !options.supported) {
    describe('sessions per user: a store without an index', () => {
      it('binds the user in the record, and rejects listing, revoking and counting users with ERR_UNSUPPORTED', async () => {
        const { sessions, login, visit } = await setup()
        const { jar } = await login('ada')
        expect((await visit(jar, (s) => s.userId)).result).toBe('ada')
        for (const call of [
          () => sessions.listUserSessions('ada', env()),
          () => sessions.revokeUserSession('ada', 'handle', env()),
          () => sessions.revokeUserSessions('ada', {}, env()),
          () => sessions.countUsers(env()),
        ])
          await expect(call()).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' })
      })
    })
    return
  }

  if (options.kind === 'cookie') {
    describe('sessions per user: cookie store', () => {
      it('keeps a login made by a first request that sets nothing else', async () => {
        const { visit } = await setup()
        const jar = new CookieJar()
        await visit(jar, (s) => s.setUser('ada'))
        expect((await visit(jar, (s) => [s.isNew, s.userId])).result).toEqual([false, 'ada'])
      })

      it('binds the user in the seal; listing, revoking and counting users are unsupported', async () => {
        const { sessions, login, visit } = await setup()
        const { jar, session } = await login('ada')
        expect(session.userId).toBe('ada')
        const again = await visit(jar, (s) => [s.userId, s.handle])
        expect(again.result).toEqual(['ada', session.handle])
        for (const call of [
          () => sessions.listUserSessions('ada', env()),
          () => sessions.revokeUserSession('ada', session.handle, env()),
          () => sessions.revokeUserSessions('ada', {}, env()),
          () => sessions.countUsers(env()),
        ])
          await expect(call()).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' })
      })
    })
    return
  }

  describe('sessions per user', () => {
    it('binds a login to its user: a new id, handle and absolute lifetime, listed with agent and label', async () => {
      const { sessions, clock, visit } = await setup()
      const jar = new CookieJar()
      const anonymous = await visit(jar, (s) => s.set('cart', ['book']))
      expect(anonymous.session.userId).toBeNull()
      const before = { id: anonymous.session.id, handle: anonymous.session.handle }
      expect(before.handle).toMatch(/^[A-Za-z0-9_-]{22}$/)
      clock.advance(120_000)
      const { session } = await visit(
        jar,
        (s) => s.setUser('user-1', { label: 'Work laptop' }),
        'Firefox/140',
      )
      expect(session.userId).toBe('user-1')
      expect(session.id).not.toBe(before.id)
      expect(session.handle).not.toBe(before.handle)
      expect(session.handle).toMatch(/^[A-Za-z0-9_-]{22}$/)
      expect(session.createdAt).toBe(clock.now())
      const list = await sessions.listUserSessions('user-1', env())
      expect(list).toEqual([
        {
          handle: session.handle,
          createdAt: clock.now(),
          lastSeenAt: clock.now(),
          expiresAt: clock.now() + IDLE * 1000,
          userAgent: 'Firefox/140',
          label: 'Work laptop',
        },
      ])
      // The handle is no cookie: nothing in the list opens the session.
      expect(JSON.stringify(list)).not.toContain(session.id)
      const next = await visit(jar, (s) => [s.userId, s.handle, s.get('cart')])
      expect(next.result).toEqual(['user-1', session.handle, ['book']])
      expect(await sessions.listUserSessions('someone-else', env())).toEqual([])
    })

    it('lists live sessions only, most recently seen first', async () => {
      const { sessions, clock, visit, login } = await setup()
      const a = await login('u', 'A')
      clock.advance(10_000)
      const b = await login('u', 'B')
      clock.advance(10_000)
      const c = await login('u', 'C')
      clock.advance(10_000)
      const d = await login('u', 'D')
      clock.advance((TOUCH + 1) * 1000)
      await visit(a.jar, () => undefined) // a due touch: A is the most recently seen now
      expect((await sessions.listUserSessions('u', env())).map((s) => s.userAgent)).toEqual([
        'A',
        'D',
        'C',
        'B',
      ])
      await visit(b.jar, (s) => s.destroy())
      clock.advance(1000)
      const regenerated = await visit(c.jar, (s) => s.regenerate())
      expect(regenerated.session.userId).toBe('u')
      const list = await sessions.listUserSessions('u', env())
      expect(list.map((s) => s.userAgent)).toEqual(['C', 'A', 'D'])
      // A regenerate keeps user, agent and label, with a new handle; the old one is gone.
      expect(list[0]?.handle).toBe(regenerated.session.handle)
      expect(list.map((s) => s.handle)).not.toContain(c.session.handle)
      // Expired on the sessions' clock: D was last seen longest ago.
      clock.set(d.session.expiresAt)
      expect((await sessions.listUserSessions('u', env())).map((s) => s.userAgent)).toEqual(['C', 'A'])
    })

    it('keeps a login made by a first request that sets nothing else, and lists it', async () => {
      const { sessions, visit } = await setup()
      const jar = new CookieJar()
      const { session } = await visit(jar, (s) => s.setUser('ada'))
      expect((await visit(jar, (s) => [s.isNew, s.userId])).result).toEqual([false, 'ada'])
      expect((await sessions.listUserSessions('ada', env())).map((s) => s.handle)).toEqual([session.handle])
    })

    it('takes any user id, label and User-Agent as data: quotes, SQL, prototype names, unicode', async () => {
      const { sessions, visit, login, inner } = await setup()
      const hostile = [
        '__proto__',
        `a'b"c\\d; DROP TABLE sessions; --`,
        'ключ 🍣 \u2028',
        'x'.repeat(1024),
        ' ',
      ]
      // A header value is Latin-1 (ByteString): the hostile agent is ASCII, quotes and all, past 256 characters.
      const agent = `UA "a'b" \\ ; <script> ${'y'.repeat(300)}`
      for (const id of hostile) {
        const { jar, session } = await login(id, agent, `label ${id}`)
        expect((await visit(jar, (s) => s.userId)).result).toBe(id)
        const [listed, ...rest] = await sessions.listUserSessions(id, env())
        expect(rest).toEqual([])
        expect(listed?.handle).toBe(session.handle)
        expect(listed?.label).toBe(`label ${id}`.slice(0, 128))
        expect(listed?.userAgent).toBe(agent.slice(0, 256))
      }
      if (inner.kind !== 'cookie' && inner.countUsers)
        expect(await sessions.countUsers(env())).toBe(hostile.length)
      expect(await sessions.revokeUserSessions(hostile[1] as string, {}, env())).toBe(1)
      expect(await sessions.listUserSessions(hostile[0] as string, env())).toHaveLength(1)
    })

    it('unbinds with setUser(null): a new id, and the session leaves the list', async () => {
      const { sessions, visit, login } = await setup()
      const { jar, session } = await login('u')
      const out = await visit(jar, (s) => s.setUser(null))
      expect(out.session.userId).toBeNull()
      expect(out.session.id).not.toBe(session.id)
      expect(await sessions.listUserSessions('u', env())).toEqual([])
      const after = await visit(jar, (s) => [s.userId, s.get('visits')])
      expect(after.result).toEqual([null, 1])
    })

    it('revokes one session by its handle: its next request is a fresh session, never an error', async () => {
      const { sessions, visit, login, calls } = await setup()
      const phone = await login('u', 'Phone')
      const laptop = await login('u', 'Laptop')
      const other = await login('v', 'Other')
      expect(await sessions.revokeUserSession('v', phone.session.handle, env())).toBe(false)
      expect(await sessions.revokeUserSession('u', 'not-a-handle', env())).toBe(false)
      calls.length = 0
      expect(await sessions.revokeUserSession('u', phone.session.handle, env())).toBe(true)
      expect(calls.length).toBeLessThanOrEqual(2)
      expect(await sessions.revokeUserSession('u', phone.session.handle, env())).toBe(false)
      const revoked = await visit(phone.jar, (s) => [s.isNew, s.userId, s.get('visits')], undefined, FRESH)
      expect(revoked.result).toEqual([true, null, undefined])
      expect((await visit(laptop.jar, (s) => s.userId)).result).toBe('u')
      expect((await visit(other.jar, (s) => s.userId)).result).toBe('v')
      expect((await sessions.listUserSessions('u', env())).map((s) => s.userAgent)).toEqual(['Laptop'])
    })

    it('logs out everywhere but here, and says how many it ended', async () => {
      const { sessions, visit, login, calls } = await setup()
      const here = await login('u', 'Here')
      await login('u', 'A')
      await login('u', 'B')
      await login('v', 'Someone else')
      calls.length = 0
      expect(await sessions.revokeUserSessions('u', { except: here.session.handle }, env())).toBe(2)
      expect(calls.length).toBeLessThanOrEqual(2)
      expect((await sessions.listUserSessions('u', env())).map((s) => s.userAgent)).toEqual(['Here'])
      expect((await visit(here.jar, (s) => s.userId)).result).toBe('u')
      expect(await sessions.revokeUserSessions('u', {}, env())).toBe(1)
      expect(await sessions.listUserSessions('u', env())).toEqual([])
      expect((await sessions.listUserSessions('v', env())).map((s) => s.userAgent)).toEqual(['Someone else'])
    })

    it('counts distinct users with a live session; count() still counts every session', async () => {
      const { sessions, visit, login, inner } = await setup()
      // A store that keeps an index per user but cannot count users (a Redis Cluster without hash tag) says so.
      if (inner.kind !== 'cookie' && !inner.countUsers) {
        await login('u')
        await expect(sessions.countUsers(env())).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' })
        return
      }
      expect(await sessions.countUsers(env())).toBe(0)
      const first = await login('u')
      await login('u')
      await login('v')
      await visit(new CookieJar(), (s) => s.set('anonymous', true))
      expect(await sessions.countUsers(env())).toBe(2)
      await sessions.revokeUserSessions('v', {}, env())
      expect(await sessions.countUsers(env())).toBe(1)
      await visit(first.jar, (s) => s.destroy())
      expect(await sessions.countUsers(env())).toBe(1)
      await sessions.revokeUserSessions('u', {}, env())
      expect(await sessions.countUsers(env())).toBe(0)
    })

    it('keeps at most maxSessionsPerUser: the least recently seen go at a login, never the one logging in', async () => {
      const { sessions, clock, visit, login } = await setup({ maxSessionsPerUser: 2 })
      const a = await login('u', 'A')
      clock.advance(1000)
      const b = await login('u', 'B')
      clock.advance((TOUCH + 1) * 1000)
      await visit(a.jar, () => undefined) // A seen after B
      clock.advance(1000)
      const c = await login('u', 'C')
      expect((await sessions.listUserSessions('u', env())).map((s) => s.userAgent)).toEqual(['C', 'A'])
      expect((await visit(b.jar, (s) => s.isNew)).result).toBe(true)
      expect((await visit(c.jar, (s) => s.userId)).result).toBe('u')
    })

    it('lists every one of 100 concurrent logins of one user', async () => {
      const { sessions, visit } = await setup()
      const jars = Array.from({ length: 100 }, () => new CookieJar())
      await Promise.all(jars.map((jar) => visit(jar, (s) => s.set('n', 1))))
      const loaded = await Promise.all(
        jars.map((jar, i) =>
          sessions.load(jar.request('https://app.example/', { headers: { 'user-agent': `B${i}` } }), env()),
        ),
      )
      for (const s of loaded) s.setUser('crowd')
      await Promise.all(
        loaded.map((s, i) => sessions.commit(s, new Response()).then((r) => jars[i]?.update(r))),
      )
      const list = await sessions.listUserSessions('crowd', env())
      expect(list).toHaveLength(100)
      expect(new Set(list.map((s) => s.handle)).size).toBe(100)
      // About 300 records written: where each is its own Durable Object, that is 300 objects started locally.
    }, 60_000)

    it('revoking all also ends a session regenerated by its own request between the listing and the revocation', async () => {
      // The regenerating request is held open; it commits right after revokeUserSessions has read the index.
      let afterListing: (() => Promise<void>) | undefined
      const { sessions, visit, login } = await setup({}, (store) => {
        const userEntries = store.userEntries?.bind(store)
        if (!userEntries) return store
        return Object.assign(store, {
          userEntries: async (user: string, ctx: Parameters<typeof userEntries>[1]) => {
            const entries = await userEntries(user, ctx)
            const run = afterListing
            afterListing = undefined
            await run?.()
            return entries
          },
        })
      })
      const rotating = await login('u', 'Rotating')
      const other = await login('u', 'Other')
      const held = await sessions.load(rotating.jar.request(), env())
      held.regenerate()
      afterListing = async () => {
        rotating.jar.update(await sessions.commit(held, new Response()))
      }
      expect(await sessions.revokeUserSessions('u', {}, env())).toBe(2)
      expect(await sessions.listUserSessions('u', env())).toEqual([])
      expect((await visit(rotating.jar, (s) => s.isNew, undefined, FRESH)).result).toBe(true)
      expect((await visit(other.jar, (s) => s.isNew, undefined, FRESH)).result).toBe(true)
    })

    it('revoking all ends every session that existed, even with touches held open across it', async () => {
      const { sessions, clock, visit, login, inner } = await setup()
      const devices = await Promise.all(Array.from({ length: 5 }, (_, i) => login('u', `D${i}`)))
      clock.advance((TOUCH + 1) * 1000)
      // Each device's request has loaded its session and is about to commit a due touch and a change.
      const held = await Promise.all(devices.map((d) => sessions.load(d.jar.request(), env())))
      held.forEach((s, i) => {
        if (i % 2 === 0) s.set('late', i)
      })
      expect(await sessions.revokeUserSessions('u', {}, env())).toBe(5)
      await Promise.all(held.map((s) => sessions.commit(s, new Response())))
      expect(await sessions.listUserSessions('u', env())).toEqual([])
      for (const d of devices) expect((await visit(d.jar, (s) => s.isNew)).result).toBe(true)
      if (inner.kind === 'cookie' || inner.countUsers) expect(await sessions.countUsers(env())).toBe(0)
    })
  })
}
