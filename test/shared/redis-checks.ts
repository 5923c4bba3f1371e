/**
 * @module What the tests of the two stores on Redis's shared logic (`src/stores/redis-*.ts`), redisStore and
 * upstashStore, have in common: record fixtures, the hash layout both write, the aborted-call check, and the
 * calls and requests whose cost each test counts in its own way (ioredis round trips, the endpoint's requests).
 */
import { randomBytes } from 'node:crypto'
import type {
  RecordPatch,
  ServerStore,
  Session,
  SessionMeta,
  SessionRecord,
  Sessions,
  SessionUser,
  StoreContext,
  UserEntry,
} from 'edge-session'
import { expect } from 'vitest'
import { CookieJar } from '../support/jar.ts'

export const ctx = (): StoreContext => ({ env: undefined, signal: new AbortController().signal })
/** The context of a call on a record bound to a user: its entry, and that of the record it replaces. */
export const userCtx = (user?: UserEntry, replacedUser?: UserEntry): StoreContext => ({
  ...ctx(),
  ...(user ? { user } : {}),
  ...(replacedUser ? { replacedUser } : {}),
})
/** A storage key as the sessions layer makes them: base64url of 32 bytes. */
export const newKey = () => randomBytes(32).toString('base64url')
export const HOUR = 3_600_000

// Deliberately far from Redis's clock: the store must copy these, never judge by them.
export const meta = (over: Partial<SessionMeta> = {}): SessionMeta => ({
  createdAt: 946_684_800_000,
  lastSeenAt: 946_684_800_000,
  expiresAt: 946_686_600_000,
  ...over,
})

export const record = (data: Record<string, unknown>, over: Partial<SessionMeta> = {}): SessionRecord => ({
  data,
  meta: meta(over),
})

/** A patch setting `set` and deleting `del`; `over.flash` lists the keys of `set` that are flash values. */
export const patch = (
  set: Record<string, unknown>,
  del: string[] = [],
  over: Partial<SessionMeta> = {},
): RecordPatch => {
  const { flash = [], ...times } = over
  return { set, delete: del, flash, meta: meta(times) }
}

/** Redis as a test reads and writes it past the store. */
export interface RedisView {
  /** `TYPE`: `hash`, `zset`, `none`... */
  type(key: string): Promise<string>
  /** `HGETALL`, fields to text. */
  hash(key: string): Promise<Record<string, string>>
  /** `PTTL`. */
  pttl(key: string): Promise<number>
  /** Any command; error replies reject. */
  run(...args: string[]): Promise<unknown>
}

/**
 * Sets a record with a flash through `store` (its prefix `prefix`) and checks the hash Redis then holds: a field
 * per data key, per flash marker and per time, each JSON behind `j`, and the TTL as given. Returns the record's key.
 */
export async function expectSessionHash(
  store: ServerStore,
  prefix: string,
  redis: RedisView,
): Promise<string> {
  const key = newKey()
  await store.set(key, record({ user: 'ada', n: 3 }, { flash: ['n'] }), 90_000, ctx())
  expect(await redis.type(`${prefix}${key}`)).toBe('hash')
  expect(await redis.hash(`${prefix}${key}`)).toEqual({
    'd:user': 'j"ada"',
    'd:n': 'j3',
    'm:createdAt': 'j946684800000',
    'm:lastSeenAt': 'j946684800000',
    'm:expiresAt': 'j946686600000',
    'f:n': 'j1',
  })
  const ttl = await redis.pttl(`${prefix}${key}`)
  expect(ttl).toBeGreaterThan(85_000)
  expect(ttl).toBeLessThanOrEqual(90_000)
  return key
}

/** A get and a set with an already aborted signal both reject with its reason; the caller checks nothing went out. */
export async function expectAbortedCallsRefused(store: ServerStore): Promise<void> {
  const controller = new AbortController()
  controller.abort(new Error('timed out'))
  const aborted = { env: undefined, signal: controller.signal }
  await expect(store.get(newKey(), aborted)).rejects.toThrow('timed out')
  await expect(store.set(newKey(), record({}), HOUR, aborted)).rejects.toThrow('timed out')
}

type Steps = Record<string, () => unknown>

/** A user's key, as the sessions layer names users: base64url of 32 bytes. */
export const newUserKey = newKey
/** A handle, as the sessions layer makes them: base64url of 132 bits (22 characters). */
export const newHandle = () => randomBytes(17).toString('base64url').slice(0, 22)

/** A record's user as the sessions layer writes it, and the entry the calls on that record carry. */
export function bound(id = 'ada', user = newUserKey()): { user: SessionUser; entry: () => UserEntry } {
  return {
    user: { id, key: user, agent: 'TestBrowser/1.0', label: null },
    entry: () => ({ user, handle: newHandle() }),
  }
}

/** A record bound to `user` under `entry`'s handle. */
export function boundRecord(
  data: Record<string, unknown>,
  user: SessionUser,
  entry: UserEntry,
): SessionRecord {
  return record(data, { handle: entry.handle, user })
}

/**
 * One call of each kind on fresh records, anonymous and bound to a user, in an order where each finds what it
 * needs; for `measureEach`.
 */
export function oneCallOfEach(store: ServerStore): Steps {
  const [oldKey, key, userKey, movedKey] = [newKey(), newKey(), newKey(), newKey()]
  const ada = bound()
  const [first, moved] = [ada.entry(), ada.entry()]
  return {
    set: () => store.set(oldKey, record({ a: 1 }), HOUR, ctx()),
    get: () => store.get(oldKey, ctx()),
    patch: () => store.patch(oldKey, patch({ b: 2 }, ['a']), HOUR, ctx()),
    touch: async () => store.touch?.(oldKey, meta(), HOUR, ctx()),
    'set replaces': () => store.set(key, record({ b: 2 }), HOUR, ctx(), oldKey),
    count: async () => store.count?.(ctx()),
    delete: () => store.delete(key, ctx()),
    'set, bound': () => store.set(userKey, boundRecord({ a: 1 }, ada.user, first), HOUR, userCtx(first)),
    'patch, bound': () => store.patch(userKey, patch({ b: 2 }), HOUR, userCtx(first)),
    'touch, bound': async () => store.touch?.(userKey, meta(), HOUR, userCtx(first)),
    // With `returnRecord` (the cookie cache): the same one script, answering the record it left.
    'patch, record': () =>
      store.patch(userKey, patch({ c: 3 }), HOUR, { ...userCtx(first), returnRecord: true }),
    'touch, record': async () =>
      store.touch?.(userKey, meta(), HOUR, { ...userCtx(first), returnRecord: true }),
    'set replaces, bound': () =>
      store.set(movedKey, boundRecord({ b: 2 }, ada.user, moved), HOUR, userCtx(moved, first), userKey),
    userEntries: async () => store.userEntries?.(ada.user.key, ctx()),
    getMany: async () => store.getMany?.([movedKey, userKey], ctx()),
    countUsers: async () => store.countUsers?.(ctx()),
    revokeUser: async () => store.revokeUser?.(ada.user.key, [movedKey], ctx()),
    'delete, bound': () => store.delete(movedKey, userCtx(moved)),
  }
}

type Meter<T> = () => Promise<() => Promise<T> | T>

/**
 * Each call of `oneCallOfEach(store)` costs one round trip and one command, as `meter` counts them. A meter that
 * reads the server's own tally (`INFO commandstats`) also counts the HGETALL a script runs for each record it
 * reads (getMany's two, the one a write with `returnRecord` answers): `scriptReads` 1 then.
 */
export async function expectOneRoundTripAndCommandEach(
  store: ServerStore,
  meter: Meter<[number, number]>,
  scriptReads = 0,
) {
  const measured = await measureEach(oneCallOfEach(store), meter)
  expect(Object.keys(measured)).toHaveLength(18)
  const reads = (call: string) => (call === 'getMany' ? 2 : call.endsWith(', record') ? 1 : 0)
  for (const [call, cost] of Object.entries(measured))
    expect(cost, call).toEqual([1, 1 + reads(call) * scriptReads])
}

/**
 * One request of each kind, in turn, by one browser (`jar`): anonymous, a new session, a read-only one, a change,
 * a touch (`advanceClock` moves time past the touch interval), a regenerate and a destroy; for `measureEach`.
 */
export function oneRequestOfEach(
  sessions: Sessions<Record<string, unknown>>,
  jar: CookieJar,
  advanceClock: () => void,
): Steps {
  const visit = (handle: (s: Session<Record<string, unknown>>) => void) => async () => {
    const session = await sessions.load(jar.request())
    handle(session)
    jar.update(await sessions.commit(session, new Response()))
  }
  return {
    anonymous: visit(() => {}),
    new: visit((s) => s.set('a', 1)),
    readOnly: visit((s) => s.get('a')),
    changing: visit((s) => s.set('b', 2)),
    touch: visit(advanceClock),
    regenerate: visit((s) => s.regenerate()),
    destroy: visit((s) => s.destroy()),
  }
}

/**
 * The round trips each request of `oneRequestOfEach` costs on either store: none without a cookie, one to load
 * a session or to write a new one, one more to write a loaded one.
 */
export const ROUND_TRIP_BUDGET = {
  anonymous: 0,
  new: 1,
  readOnly: 1,
  changing: 2,
  touch: 2,
  regenerate: 2,
  destroy: 2,
}

/**
 * The per-user requests and calls, in turn, for `measureEach`: a browser (`jar`) logs in from an anonymous
 * session, reads, changes, touches (`advanceClock` passes the touch interval), regenerates; then the user's
 * sessions are listed, one other device revoked, all others revoked, users counted, and the browser logs out.
 * Two other devices of the user log in first (not measured).
 */
export async function perUserSteps(
  sessions: Sessions<Record<string, unknown>>,
  jar: CookieJar,
  advanceClock: () => void,
): Promise<Steps> {
  let current: Session<Record<string, unknown>> | undefined
  const visit = (handle: (s: Session<Record<string, unknown>>) => void) => async () => {
    const session = await sessions.load(jar.request())
    handle(session)
    jar.update(await sessions.commit(session, new Response()))
    current = session
  }
  const devices: string[] = []
  for (const agent of ['Phone', 'Tablet']) {
    const other = new CookieJar()
    const first = await sessions.load(other.request())
    first.set('device', agent)
    other.update(await sessions.commit(first, new Response()))
    const login = await sessions.load(other.request())
    login.setUser('ada', { label: agent })
    other.update(await sessions.commit(login, new Response()))
    devices.push(login.handle)
  }
  return {
    new: visit((s) => s.set('a', 1)),
    login: visit((s) => s.setUser('ada', { label: 'Laptop' })),
    readOnly: visit((s) => s.get('a')),
    changing: visit((s) => s.set('b', 2)),
    touch: visit(advanceClock),
    regenerate: visit((s) => s.regenerate()),
    list: async () => expect(await sessions.listUserSessions('ada')).toHaveLength(3),
    revokeOne: async () => expect(await sessions.revokeUserSession('ada', devices[0] as string)).toBe(true),
    revokeOthers: async () =>
      expect(await sessions.revokeUserSessions('ada', { except: current?.handle as string })).toBe(1),
    countUsers: async () => expect(await sessions.countUsers()).toBe(1),
    logout: visit((s) => s.destroy()),
  }
}

/**
 * What each step of `perUserSteps` costs on either store: a login costs what a regenerate costs (the old record,
 * the new one and both index entries in one write), a bound session what an anonymous one costs, listing and
 * revoking two (the user's index, then the records), counting users one.
 */
export const USER_ROUND_TRIP_BUDGET = {
  new: 1,
  login: 2,
  readOnly: 1,
  changing: 2,
  touch: 2,
  regenerate: 2,
  list: 2,
  revokeOne: 2,
  revokeOthers: 2,
  countUsers: 1,
  logout: 2,
}

/**
 * Runs each step alone, in order, and returns what it cost: `start()` is called before the step and resolves to
 * the function that reads the cost after it.
 */
export async function measureEach<T>(steps: Steps, start: Meter<T>): Promise<Record<string, T>> {
  const measured: Record<string, T> = {}
  for (const [name, step] of Object.entries(steps)) {
    const read = await start()
    await step()
    measured[name] = await read()
  }
  return measured
}

/** Keys that an object merge, a `d:`/`f:`/`m:` field namespace or a prototype could lose or misread. */
const AWKWARD_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'd:x',
  'f:x',
  'm:createdAt',
  'm:flash',
  '',
]

function awkwardData(tag: string): Record<string, unknown> {
  const data: Record<string, unknown> = Object.create(null)
  for (const key of AWKWARD_KEYS) data[key] = { of: key, tag }
  return data
}

/**
 * Every string key survives a whole write and a patch (set, flash, delete): `get` answers a null-prototype data
 * object holding exactly the keys written, each an own key, and the markers of exactly the flashed ones.
 */
export async function expectEveryKeyKept(store: ServerStore): Promise<void> {
  const whole = newKey()
  await store.set(whole, { data: awkwardData('set'), meta: meta({ flash: ['__proto__'] }) }, HOUR, ctx())
  const read = await store.get(whole, ctx())
  expect(Object.getPrototypeOf(read?.data)).toBeNull()
  expect(Object.keys(read?.data ?? {}).sort()).toEqual([...AWKWARD_KEYS].sort())
  for (const key of AWKWARD_KEYS) expect(read?.data[key]).toEqual({ of: key, tag: 'set' })
  expect(read?.meta.flash).toEqual(['__proto__'])

  const patched = newKey()
  await store.set(patched, record({ user: 'ada' }), HOUR, ctx())
  const change: RecordPatch = {
    set: awkwardData('patch'),
    delete: [],
    flash: ['constructor', ''],
    meta: meta(),
  }
  expect(await store.patch(patched, change, HOUR, ctx())).toBe(true)
  const after = await store.get(patched, ctx())
  expect(Object.getPrototypeOf(after?.data)).toBeNull()
  expect(Object.keys(after?.data ?? {}).sort()).toEqual(['user', ...AWKWARD_KEYS].sort())
  for (const key of AWKWARD_KEYS) {
    expect(Object.hasOwn(after?.data ?? {}, key)).toBe(true)
    expect(after?.data[key]).toEqual({ of: key, tag: 'patch' })
  }
  expect(after?.meta.flash?.sort()).toEqual(['', 'constructor'])
  const removal: RecordPatch = { set: Object.create(null), delete: AWKWARD_KEYS, flash: [], meta: meta() }
  expect(await store.patch(patched, removal, HOUR, ctx())).toBe(true)
  const left = await store.get(patched, ctx())
  expect(Object.keys(left?.data ?? {})).toEqual(['user'])
  expect(left?.meta.flash).toBeUndefined()
}

/**
 * A record as the stores wrote it before flash markers had a field each (one JSON list in `m:flash`) reads with
 * its markers; a touch and a patch of another key keep them; a patch naming a key clears only its marker, and
 * leaves the record in the current layout.
 */
export async function expectLegacyFlashList(store: ServerStore, prefix: string, redis: RedisView) {
  const key = newKey()
  const times = [
    'm:createdAt',
    'j946684800000',
    'm:lastSeenAt',
    'j946684800000',
    'm:expiresAt',
    'j946686600000',
  ]
  await redis.run('HSET', prefix + key, 'd:user', 'j"ada"', 'd:notice', 'j"Saved!"', 'd:a', 'j1', ...times)
  await redis.run('HSET', prefix + key, 'm:flash', 'j["notice","a"]')
  await redis.run('PEXPIRE', prefix + key, String(HOUR))
  const flash = async () => (await store.get(key, ctx()))?.meta.flash?.sort()

  expect(await store.get(key, ctx())).toEqual(
    record({ user: 'ada', notice: 'Saved!', a: 1 }, { flash: ['notice', 'a'] }),
  )
  expect(await store.touch?.(key, meta({ lastSeenAt: 946_684_900_000 }), HOUR, ctx())).toBe(true)
  expect(await flash()).toEqual(['a', 'notice'])
  expect(await store.patch(key, patch({ b: 2 }), HOUR, ctx())).toBe(true)
  expect(await flash()).toEqual(['a', 'notice'])
  // The next request reads the flash: deleted, and so is its marker; the other marker stays.
  expect(await store.patch(key, patch({}, ['notice']), HOUR, ctx())).toBe(true)
  expect(await store.get(key, ctx())).toEqual(record({ user: 'ada', a: 1, b: 2 }, { flash: ['a'] }))
  // Set again as a plain value: no longer a flash.
  expect(await store.patch(key, patch({ a: 5 }), HOUR, ctx())).toBe(true)
  expect(await store.get(key, ctx())).toEqual(record({ user: 'ada', a: 5, b: 2 }))
  expect(Object.keys(await redis.hash(prefix + key)).sort()).toEqual([
    'd:a',
    'd:b',
    'd:user',
    'm:createdAt',
    'm:expiresAt',
    'm:lastSeenAt',
  ])
}

/**
 * A flash set by one request survives two requests that loaded the session before it and commit after it: one
 * changing another key, one only touching. The flashing request is held open between its load and its commit
 * while the others load, and the three commit in each of the six orders; the flash is then read exactly once.
 */
export async function expectFlashKeptFromRacingRequests(
  sessionsFor: (now: () => number) => Sessions<Record<string, unknown>>,
): Promise<void> {
  type Visit = { name: string; session: Session<Record<string, unknown>> }
  const orders = [
    ['flasher', 'writer', 'toucher'],
    ['flasher', 'toucher', 'writer'],
    ['writer', 'flasher', 'toucher'],
    ['toucher', 'flasher', 'writer'],
    ['writer', 'toucher', 'flasher'],
    ['toucher', 'writer', 'flasher'],
  ]
  for (const order of orders) {
    let now = Date.UTC(2030, 0, 1)
    const sessions = sessionsFor(() => now)
    const jar = new CookieJar()
    const first = await sessions.load(jar.request())
    first.set('user', 'ada')
    jar.update(await sessions.commit(first, new Response()))
    now += 61_000
    const flasher = await sessions.load(jar.request())
    const writer = await sessions.load(jar.request())
    const toucher = await sessions.load(jar.request())
    flasher.flash('notice', 'Saved!')
    writer.set('a', 1)
    const visits: Visit[] = [
      { name: 'flasher', session: flasher },
      { name: 'writer', session: writer },
      { name: 'toucher', session: toucher },
    ]
    for (const name of order) {
      const visit = visits.find((v) => v.name === name) as Visit
      const response = await sessions.commit(visit.session, new Response())
      // Each wrote (the toucher too: past the touch interval), so each sent the cookie again.
      expect(response.headers.getSetCookie(), `${order.join(', ')}: ${name}`).toHaveLength(1)
    }
    const reader = await sessions.load(jar.request())
    expect(reader.get('notice'), order.join(', ')).toBe('Saved!')
    await sessions.commit(reader, new Response())
    const after = await sessions.load(jar.request())
    expect(after.has('notice'), order.join(', ')).toBe(false)
    expect(after.all()).toEqual({ user: 'ada', a: 1 })
  }
}

/**
 * Every string reachable from `root`: each own property (enumerable or not, getters read), an error's message,
 * stack and cause, nested objects and arrays, bytes as UTF-8 text.
 */
export function reachableText(root: unknown): string[] {
  const texts: string[] = []
  const seen = new Set<unknown>()
  const visit = (value: unknown, depth: number): void => {
    if (typeof value === 'string') {
      texts.push(value)
      return
    }
    if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return
    if (seen.has(value) || depth > 10) return
    seen.add(value)
    if (ArrayBuffer.isView(value)) {
      texts.push(new TextDecoder().decode(value))
      return
    }
    if (value instanceof Error) {
      visit(value.message, depth + 1)
      visit(value.stack, depth + 1)
      visit(value.cause, depth + 1)
    }
    for (const name of Reflect.ownKeys(value)) {
      let item: unknown
      try {
        item = (value as Record<PropertyKey, unknown>)[name]
      } catch {
        continue
      }
      if (typeof name === 'string') texts.push(name)
      visit(item, depth + 1)
    }
  }
  visit(root, 0)
  return texts
}

/** A fragment of every write script's text (their Lua). */
export const SCRIPT_TEXT = "redis.call('"

/** Nothing reachable from `error` (see `reachableText`) contains any of `secrets`. */
export function expectNoneOf(error: unknown, secrets: readonly string[]): void {
  const texts = reachableText(error)
  expect(texts.length).toBeGreaterThan(0)
  for (const secret of secrets) {
    const found = texts.find((text) => text.includes(secret))
    expect(found, `${JSON.stringify(secret)} is reachable from the error`).toBeUndefined()
  }
}

/** What `promise` rejected with; fails when it resolved. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected a rejection')
}

/** Every key name in Redis that starts with `prefix`, by SCAN (as an operator would list them). */
export async function scanKeys(redis: RedisView, prefix: string): Promise<string[]> {
  const names: string[] = []
  let cursor = '0'
  do {
    const [next, batch] = (await redis.run('SCAN', cursor, 'COUNT', '1000')) as [unknown, unknown[]]
    cursor = String(next)
    for (const name of batch) if (String(name).startsWith(prefix)) names.push(String(name))
  } while (cursor !== '0')
  return names.sort()
}

/** A sorted set's members, lowest score first. */
async function members(redis: RedisView, key: string): Promise<string[]> {
  return ((await redis.run('ZRANGE', key, '0', '-1')) as unknown[]).map(String)
}

/** Milliseconds on Redis's clock. */
export async function redisNow(redis: RedisView): Promise<number> {
  const [seconds, micros] = (await redis.run('TIME')) as [unknown, unknown]
  return Number(String(seconds)) * 1000 + Math.floor(Number(String(micros)) / 1000)
}

/**
 * A record bound to a user keeps its handle and user in `m:` fields, and has an entry `<handle>.<key>` in the
 * user's index `prefix + 'u:' + user key`, scored by its deadline on Redis's clock; the user is in the users set.
 */
export async function expectUserLayout(store: ServerStore, prefix: string, redis: RedisView): Promise<void> {
  const key = newKey()
  const ada = bound('ada@example.com')
  const entry = ada.entry()
  const user = { ...ada.user, agent: 'Firefox/140', label: 'Work "laptop"' }
  const before = await redisNow(redis)
  await store.set(key, boundRecord({ n: 1 }, user, entry), 90_000, userCtx(entry))
  const after = await redisNow(redis)
  expect(await redis.hash(prefix + key)).toEqual({
    'd:n': 'j1',
    'm:createdAt': 'j946684800000',
    'm:lastSeenAt': 'j946684800000',
    'm:expiresAt': 'j946686600000',
    'm:handle': `j"${entry.handle}"`,
    'm:user': `j${JSON.stringify({ id: 'ada@example.com', key: user.key, agent: 'Firefox/140', label: 'Work "laptop"' })}`,
  })
  expect(await store.get(key, ctx())).toEqual(boundRecord({ n: 1 }, user, entry))
  const index = `${prefix}u:${user.key}`
  expect(await redis.type(index)).toBe('zset')
  expect(await members(redis, index)).toEqual([`${entry.handle}.${key}`])
  const score = Number(String(await redis.run('ZSCORE', index, `${entry.handle}.${key}`)))
  expect(score).toBeGreaterThanOrEqual(before + 90_000)
  expect(score).toBeLessThanOrEqual(after + 90_000)
  expect(await members(redis, `${prefix}users`)).toEqual([user.key])
  expect(Number(String(await redis.run('ZSCORE', `${prefix}users`, user.key)))).toBe(score)
  expect(await store.userEntries?.(user.key, ctx())).toEqual([{ key, handle: entry.handle }])
  expect(await store.countUsers?.(ctx())).toBe(1)
}

/**
 * After logins of users whose ids are distinctive, no key name holds a user id: SCAN finds only session keys,
 * the live set, the users set and one index per user named by a hash, and their members hold no id either.
 */
export async function expectNoUserIdInKeyNames(
  sessions: Sessions<Record<string, unknown>>,
  prefix: string,
  redis: RedisView,
): Promise<void> {
  const ids = ['ada@example.com', 'user:4711', 'Grace Hopper', '{tagged}', 'édith']
  for (const id of ids) {
    for (const device of ['Phone', 'Laptop']) {
      const jar = new CookieJar()
      const first = await sessions.load(jar.request())
      first.set('device', device)
      jar.update(await sessions.commit(first, new Response()))
      const login = await sessions.load(jar.request())
      login.setUser(id, { label: `${id}'s ${device}` })
      jar.update(await sessions.commit(login, new Response()))
    }
  }
  const anonymous = await sessions.load(new Request('https://app.example/'))
  anonymous.set('a', 1)
  await sessions.commit(anonymous, new Response())

  const names = await scanKeys(redis, prefix)
  const kinds = { session: 0, index: 0, other: [] as string[] }
  for (const name of names) {
    const rest = name.slice(prefix.length)
    if (/^[\w-]{43}$/.test(rest)) kinds.session++
    else if (/^u:[\w-]{43}$/.test(rest)) kinds.index++
    else kinds.other.push(rest)
  }
  expect(kinds).toEqual({ session: 2 * ids.length + 1, index: ids.length, other: ['#live', 'users'] })
  const texts = [...names]
  for (const name of names)
    if ((await redis.type(name)) === 'zset') texts.push(...(await members(redis, name)))
  for (const id of ids) {
    for (const text of texts) expect(text, `${id} in ${text}`).not.toContain(id)
  }
  expect(await sessions.countUsers()).toBe(ids.length)
  for (const id of ids) expect(await sessions.listUserSessions(id)).toHaveLength(2)
}

/**
 * A user's index and the users set expire with their sessions: each one's TTL is its latest member's deadline,
 * following writes, deletes and revocations, and each is gone with its last session, by Redis's own expiry too.
 */
export async function expectUserSetsExpireWithSessions(
  store: ServerStore,
  prefix: string,
  redis: RedisView,
): Promise<void> {
  const ada = bound()
  const [a, b] = [ada.entry(), ada.entry()]
  const [keyA, keyB] = [newKey(), newKey()]
  const index = `${prefix}u:${ada.user.key}`
  const users = `${prefix}users`
  /** The PTTL of each of `keys`, in whole seconds, rounded up. */
  const ttls = async (...keys: string[]) =>
    Promise.all(keys.map(async (key) => Math.ceil((await redis.pttl(key)) / 1000)))

  await store.set(keyA, boundRecord({}, ada.user, a), 60_000, userCtx(a))
  await store.set(keyB, boundRecord({}, ada.user, b), 120_000, userCtx(b))
  expect(await ttls(prefix + keyA, prefix + keyB, index, users)).toEqual([60, 120, 120, 120])
  // A touch moves the index's TTL with its latest entry, either way.
  expect(await store.touch?.(keyB, meta(), 30_000, userCtx(b))).toBe(true)
  expect(await ttls(index, users)).toEqual([60, 60])
  expect(await store.patch(keyA, patch({ n: 1 }), 90_000, userCtx(a))).toBe(true)
  expect(await ttls(index, users)).toEqual([90, 90])
  await store.delete(keyA, userCtx(a))
  expect(await ttls(index, users)).toEqual([30, 30])
  expect(await store.countUsers?.(ctx())).toBe(1)
  expect(await store.revokeUser?.(ada.user.key, [keyB], ctx())).toBe(1)
  expect(await redis.run('EXISTS', index, users)).toBe(0)
  expect(await store.countUsers?.(ctx())).toBe(0)

  // Left alone, the index and the users set lapse with the session, by Redis's own expiry.
  const c = ada.entry()
  const keyC = newKey()
  await store.set(keyC, boundRecord({}, ada.user, c), 300, userCtx(c))
  expect(await redis.run('EXISTS', prefix + keyC, index, users)).toBe(3)
  await new Promise((resolve) => setTimeout(resolve, 400))
  expect(await redis.run('EXISTS', prefix + keyC, index, users)).toBe(0)
}

/**
 * `revokeUser` deletes only the records of the keys given that belong to that user (with their entries), and
 * says how many: another user's session and an anonymous one stay, whatever keys it is given. With `spread` (a
 * Redis Cluster without hash tag) a revoked record's entry stays until its deadline, and `getMany` shows it gone.
 */
export async function expectRevokeOnlyTheUsers(store: ServerStore, spread = false): Promise<void> {
  const [ada, bob] = [bound('ada'), bound('bob')]
  const [a, b] = [ada.entry(), bob.entry()]
  const [keyA, keyB, anonymous, missing] = [newKey(), newKey(), newKey(), newKey()]
  await store.set(keyA, boundRecord({ who: 'ada' }, ada.user, a), HOUR, userCtx(a))
  await store.set(keyB, boundRecord({ who: 'bob' }, bob.user, b), HOUR, userCtx(b))
  await store.set(anonymous, record({ who: 'nobody' }), HOUR, ctx())

  expect(await store.revokeUser?.(ada.user.key, [keyB, anonymous, missing, keyA], ctx())).toBe(1)
  expect(await store.revokeUser?.(ada.user.key, [keyA], ctx())).toBe(0)
  expect(await store.getMany?.([keyB, keyA, anonymous, missing], ctx())).toEqual([
    boundRecord({ who: 'bob' }, bob.user, b),
    null,
    record({ who: 'nobody' }),
    null,
  ])
  expect(await store.userEntries?.(bob.user.key, ctx())).toEqual([{ key: keyB, handle: b.handle }])
  expect(await store.userEntries?.(ada.user.key, ctx())).toEqual(
    spread ? [{ key: keyA, handle: a.handle }] : [],
  )
  if (!spread) expect(await store.countUsers?.(ctx())).toBe(1)
}

/**
 * A record written before sessions per user (no `m:handle`) still opens: its handle is derived from its key, the
 * same on every load, and it can log in, after which it is listed under its new handle.
 */
export async function expectRecordWithoutHandleWorks(
  sessions: Sessions<Record<string, unknown>>,
  prefix: string,
  redis: RedisView,
  storageKey: (id: string) => Promise<string>,
): Promise<void> {
  const jar = new CookieJar()
  const first = await sessions.load(jar.request())
  first.set('cart', ['book'])
  jar.update(await sessions.commit(first, new Response()))
  await redis.run('HDEL', prefix + (await storageKey(first.id)), 'm:handle')
  const [one, two] = [await sessions.load(jar.request()), await sessions.load(jar.request())]
  expect(one.isNew).toBe(false)
  expect(one.handle).toMatch(/^[\w-]{22}$/)
  expect(one.handle).not.toBe(first.handle)
  expect(two.handle).toBe(one.handle)
  one.setUser('ada')
  jar.update(await sessions.commit(one, new Response()))
  const list = await sessions.listUserSessions('ada')
  expect(list.map((s) => s.handle)).toEqual([one.handle])
  expect((await sessions.load(jar.request())).all()).toEqual({ cart: ['book'] })
}
