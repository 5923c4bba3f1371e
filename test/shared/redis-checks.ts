/**
 * @module What the tests of the two stores on Redis's shared logic (`src/stores/redis-core.ts`), redisStore and
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
  StoreContext,
} from 'edge-session'
import { expect } from 'vitest'
import { CookieJar } from '../support/jar.ts'

export const ctx = (): StoreContext => ({ env: undefined, signal: new AbortController().signal })
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

/** One call of each kind on a fresh record, in an order where each finds what it needs; for `measureEach`. */
export function oneCallOfEach(store: ServerStore): Steps {
  const [oldKey, key] = [newKey(), newKey()]
  return {
    set: () => store.set(oldKey, record({ a: 1 }), HOUR, ctx()),
    get: () => store.get(oldKey, ctx()),
    patch: () => store.patch(oldKey, patch({ b: 2 }, ['a']), HOUR, ctx()),
    touch: async () => store.touch?.(oldKey, meta(), HOUR, ctx()),
    'set replaces': () => store.set(key, record({ b: 2 }), HOUR, ctx(), oldKey),
    count: async () => store.count?.(ctx()),
    delete: () => store.delete(key, ctx()),
  }
}

type Meter<T> = () => Promise<() => Promise<T> | T>

/** Each call of `oneCallOfEach(store)` costs one round trip and one command, as `meter` counts them. */
export async function expectOneRoundTripAndCommandEach(store: ServerStore, meter: Meter<[number, number]>) {
  expect(await measureEach(oneCallOfEach(store), meter)).toEqual({
    set: [1, 1],
    get: [1, 1],
    patch: [1, 1],
    touch: [1, 1],
    'set replaces': [1, 1],
    count: [1, 1],
    delete: [1, 1],
  })
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
