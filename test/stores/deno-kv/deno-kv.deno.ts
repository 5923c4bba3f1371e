/**
 * @module The Deno KV store under Deno: the shared store conformance suite, then what is particular to Deno KV
 * (versionstamp checks and retries, lazy expiry, the value limit). Run by test/stores/deno-kv/deno-kv.test.ts as
 * `deno test --unstable-kv` with this folder's deno.json, where `vitest` is ./vitest.ts.
 */

import { createSessions, type ServerStore, SessionError, type Sessions } from 'edge-session'
import {
  type DenoKv,
  type DenoKvAtomicOperation,
  type DenoKvKeyPart,
  denoKvStore,
} from 'edge-session/stores/deno-kv'
import { describe, expect, it } from 'vitest'
import { describeStoreConformance, storageKey } from '../../shared/conformance.ts'
import { CookieJar, manualClock } from '../../support/jar.ts'

// One database for the whole file (a test that opened its own would leak it as a resource); each store gets a
// prefix of its own, so every test starts with an empty key space.
const kv = await Deno.openKv(':memory:')
let stores = 0
const freshPrefix = () => ['test', ++stores, 'sess']

describeStoreConformance({
  name: 'deno-kv',
  kind: 'server',
  createStore: () => denoKvStore({ kv, prefix: freshPrefix() }),
  realTimeExpiry: true,
})

const SECRET = 'deno-kv-test-secret-0123456789abcdefghijkl'
const ctx = () => ({ env: undefined, signal: new AbortController().signal })
const meta = (expiresAt = 0) => ({ createdAt: 0, lastSeenAt: 0, expiresAt })

type Commit = () => Promise<{ ok: boolean }>

/** `kv`, with each atomic commit handed to `commit` along with the function that lets it through. */
function kvWithCommits(commit: (run: Commit) => Promise<{ ok: boolean }>): DenoKv {
  return {
    get: kv.get.bind(kv),
    getMany: kv.getMany.bind(kv),
    set: kv.set.bind(kv),
    delete: kv.delete.bind(kv),
    list: kv.list.bind(kv),
    atomic(): DenoKvAtomicOperation {
      const op = kv.atomic()
      const wrapped: DenoKvAtomicOperation = {
        check(...checks) {
          op.check(...checks)
          return wrapped
        },
        set(key, value, options) {
          op.set(key, value, options)
          return wrapped
        },
        delete(key) {
          op.delete(key)
          return wrapped
        },
        commit: () => commit(() => op.commit()),
      }
      return wrapped
    },
  }
}

/** A Deno KV whose atomic commits report a lost race `failures` times before they are let through. */
function contendedKv(failures: number): DenoKv & { commits: number } {
  let left = failures
  const wrapper = Object.assign(
    kvWithCommits(async (run) => {
      wrapper.commits++
      if (left-- > 0) return { ok: false }
      return run()
    }),
    { commits: 0 },
  )
  return wrapper
}

/**
 * `kv`, except that once `hold()` is called the next atomic commit waits until `release()`: `reached` resolves
 * when it is waiting, after the read it is checked against. A request held there is between its read and its write.
 */
function heldKv() {
  let gate: { reached: () => void; released: Promise<void> } | undefined
  let reached: Promise<void> = Promise.resolve()
  let release: () => void = () => {}
  let commits = 0
  const held = kvWithCommits(async (run) => {
    commits++
    const waiting = gate
    gate = undefined
    if (waiting) {
      waiting.reached()
      await waiting.released
    }
    return run()
  })
  return {
    kv: held,
    hold() {
      let signal: () => void = () => {}
      reached = new Promise<void>((resolve) => {
        signal = resolve
      })
      gate = { reached: signal, released: new Promise<void>((resolve) => (release = resolve)) }
    },
    get reached() {
      return reached
    },
    release: () => release(),
    get commits() {
      return commits
    },
  }
}

describe('denoKvStore', () => {
  it('keeps a session as one entry under [...prefix, hashed id], with its TTL and deadlines', async () => {
    const prefix = freshPrefix()
    const sessions = createSessions({ store: denoKvStore({ kv, prefix }), secrets: SECRET })
    const jar = new CookieJar()
    const s = await sessions.load(jar.request())
    s.set('user', 'ada')
    jar.update(await sessions.commit(s, new Response()))
    const entries = await Array.fromAsync(kv.list<Record<string, unknown>>({ prefix }))
    expect(entries.map((e) => e.key)).toEqual([[...prefix, await storageKey(s.id)]])
    const value = entries[0]?.value
    expect(JSON.parse(String(value?.data))).toEqual({ user: 'ada' })
    expect(value?.meta).toEqual({
      createdAt: s.createdAt,
      lastSeenAt: s.createdAt,
      expiresAt: s.expiresAt,
      handle: s.handle,
    })
    // The default idle timeout (30 minutes) on this process's clock.
    expect(Number(value?.ttlEnd) - Date.now()).toBeGreaterThan(29 * 60_000)
    expect(Number(value?.ttlEnd) - Date.now()).toBeLessThanOrEqual(30 * 60_000)
  })

  it('merges many concurrent patches of one record, retrying the ones that lost the race', async () => {
    const store = denoKvStore({ kv, prefix: freshPrefix() })
    await store.set('k', { data: { start: true }, meta: meta() }, 60_000, ctx())
    const results = await Promise.all(
      Array.from({ length: 25 }, (_, i) =>
        store.patch(
          'k',
          { set: { [`k${i}`]: i }, delete: i === 0 ? ['start'] : [], flash: [], meta: meta(i) },
          60_000,
          ctx(),
        ),
      ),
    )
    expect(results).toEqual(results.map(() => true))
    const expected: Record<string, number> = {}
    for (let i = 0; i < 25; i++) expected[`k${i}`] = i
    expect((await store.get('k', ctx()))?.data).toEqual(expected)
  })

  it('retries a write whose check failed, and gives up with ERR_STORE after maxAttempts', async () => {
    const prefix = freshPrefix()
    await denoKvStore({ kv, prefix }).set('k', { data: { a: 1 }, meta: meta() }, 60_000, ctx())

    const twice = contendedKv(2)
    const patient = denoKvStore({ kv: twice, prefix, maxAttempts: 3 })
    expect(
      await patient.patch('k', { set: { b: 2 }, delete: [], flash: [], meta: meta(1) }, 60_000, ctx()),
    ).toBe(true)
    expect(twice.commits).toBe(3)
    expect((await patient.get('k', ctx()))?.data).toEqual({ a: 1, b: 2 })

    const always = contendedKv(Number.POSITIVE_INFINITY)
    const store = denoKvStore({ kv: always, prefix, maxAttempts: 4 })
    const patch = { set: { c: 3 }, delete: [], flash: [], meta: meta(2) }
    await expect(store.patch('k', patch, 60_000, ctx())).rejects.toMatchObject({ code: 'ERR_STORE' })
    expect(always.commits).toBe(4)
    await expect(store.touch?.('k', meta(3), 60_000, ctx())).rejects.toBeInstanceOf(SessionError)
    expect((await store.get('k', ctx()))?.data).toEqual({ a: 1, b: 2 })
  })

  it('regenerates atomically: the new entry only while the old one exists, which goes in the same operation', async () => {
    const store = denoKvStore({ kv, prefix: freshPrefix() })
    await store.set('old', { data: { a: 1 }, meta: meta() }, 60_000, ctx())
    expect(await store.set('new', { data: { a: 1 }, meta: meta(1) }, 60_000, ctx(), 'old')).toBe(true)
    expect(await store.get('old', ctx())).toBeNull()
    expect(await store.get('new', ctx())).toEqual({ data: { a: 1 }, meta: meta(1) })
    // The old one is gone now: a second regenerate from it writes nothing.
    expect(await store.set('newer', { data: {}, meta: meta(2) }, 60_000, ctx(), 'old')).toBe(false)
    expect(await store.get('newer', ctx())).toBeNull()
  })

  it('reads an entry past its TTL as missing before Deno KV removes it, and never revives it', async () => {
    const prefix = freshPrefix()
    const store: ServerStore = denoKvStore({ kv, prefix })
    await store.set('k', { data: { a: 1 }, meta: meta() }, 30, ctx())
    await new Promise((resolve) => setTimeout(resolve, 60))
    expect(await store.get('k', ctx())).toBeNull()
    expect(
      await store.patch('k', { set: { b: 2 }, delete: [], flash: [], meta: meta() }, 60_000, ctx()),
    ).toBe(false)
    expect(await store.touch?.('k', meta(), 60_000, ctx())).toBe(false)
    expect(await store.set('k2', { data: {}, meta: meta() }, 60_000, ctx(), 'k')).toBe(false)
    expect(await store.count?.(ctx())).toBe(0)
    expect(await store.get('k2', ctx())).toBeNull()
  })

  it('refuses data over Deno KV’s 64 KiB value limit with ERR_TOO_LARGE, writing nothing', async () => {
    const store = denoKvStore({ kv, prefix: freshPrefix() })
    await expect(
      store.set('k', { data: { big: 'x'.repeat(70_000) }, meta: meta() }, 60_000, ctx()),
    ).rejects.toMatchObject({ code: 'ERR_TOO_LARGE' })
    // Two-byte characters count twice: 33 000 of them do not fit either.
    await expect(
      store.set('k', { data: { big: 'ż'.repeat(33_000) }, meta: meta() }, 60_000, ctx()),
    ).rejects.toMatchObject({ code: 'ERR_TOO_LARGE' })
    expect(await store.get('k', ctx())).toBeNull()
    // Just under the limit is kept.
    await store.set('k', { data: { big: 'x'.repeat(60_000) }, meta: meta() }, 60_000, ctx())
    expect((await store.get('k', ctx()))?.data.big).toHaveLength(60_000)
  })

  it('turns a foreign value under its prefix into a store error, not a session', async () => {
    const prefix = freshPrefix()
    await kv.set([...prefix, 'k'], 'not a session')
    const sessions = createSessions({ store: denoKvStore({ kv, prefix }), secrets: SECRET })
    const store = denoKvStore({ kv, prefix })
    await expect(store.get('k', ctx())).rejects.toThrow(/not a session record/)
    // Counting skips it.
    expect(await sessions.count()).toBe(0)
  })

  it('refuses a configuration it cannot use with ERR_CONFIG', () => {
    const bad: unknown[] = [
      {},
      { kv: {} },
      { kv, prefix: [] },
      { kv, prefix: 'sess:' },
      { kv, prefix: [{}] },
      { kv, prefix: [null] },
      { kv, maxAttempts: 0 },
    ]
    for (const options of bad) {
      expect(() => denoKvStore(options as Parameters<typeof denoKvStore>[0])).toThrow(
        expect.objectContaining({ code: 'ERR_CONFIG' }),
      )
    }
  })

  it('measures a prefix as Deno KV encodes keys: what it accepts writes, one byte more is refused at creation', async () => {
    // Deno KV keys are at most 2048 bytes. The longest key after the prefix is a user-index entry, ['u', user key,
    // hashed id]: 3 + 45 + 45 bytes, so a prefix may take 1955. A string or byte array costs its bytes plus two,
    // each NUL byte twice; a bigint one byte plus its magnitude's (two past eight bytes, and no more than 255 of
    // them); a number nine.
    const fits: [string, DenoKvKeyPart[]][] = [
      ['text', ['x'.repeat(1953)]],
      ['NUL characters', ['\0'.repeat(975), 'x']],
      ['zero bytes', [new Uint8Array(975), 'x']],
      ['a large bigint', [2n ** 2039n, 'x'.repeat(1696)]],
      ['a negative bigint', [-(2n ** 63n), 'x'.repeat(1944)]],
      ['numbers and booleans', [...Array.from({ length: 200 }, () => 1.5), true, 'x'.repeat(152)]],
    ]
    for (const [what, prefix] of fits) {
      const withPrefix = (prefix: DenoKvKeyPart[]) => denoKvStore({ kv, prefix: [...prefix] })
      const sessions = createSessions({ store: withPrefix(prefix), secrets: SECRET })
      const jar = new CookieJar()
      const s = await sessions.load(jar.request())
      s.set('user', 'ada')
      // Bound to a user: the session's index entry, the longest key the store writes, is written too.
      s.setUser('ada')
      jar.update(await sessions.commit(s, new Response()))
      expect((await sessions.load(jar.request())).get('user'), what).toBe('ada')
      expect(await sessions.listUserSessions('ada'), what).toHaveLength(1)
      // One byte more, in the same kind of part, no longer fits.
      const longer = [...prefix.slice(0, -1), `${String(prefix.at(-1))}x`]
      expect(() => withPrefix(longer), what).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }))
    }
    for (const prefix of [['\0'.repeat(977)], [new Uint8Array(977)], [2n ** 2040n], [-(2n ** 2040n)]]) {
      expect(() => denoKvStore({ kv, prefix }), String(prefix[0]).slice(0, 10)).toThrow(
        expect.objectContaining({
          code: 'ERR_CONFIG',
          message: expect.stringMatching(/^denoKvStore\(\): `prefix`/),
        }),
      )
    }
  })

  it('reads records back into null-prototype data, every key a plain own key', async () => {
    const store = denoKvStore({ kv, prefix: freshPrefix() })
    const data = JSON.parse('{"__proto__":{"x":1},"constructor":2,"toString":3}')
    await store.set('k', { data, meta: meta() }, 60_000, ctx())
    const read = (await store.get('k', ctx()))?.data ?? {}
    expect(Object.getPrototypeOf(read)).toBeNull()
    expect(Object.keys(read)).toEqual(['__proto__', 'constructor', 'toString'])
    expect(Object.getOwnPropertyDescriptor(read, '__proto__')?.value).toEqual({ x: 1 })
  })

  it('patches flash markers as a change set, and a touch leaves them alone', async () => {
    const store = denoKvStore({ kv, prefix: freshPrefix() })
    await store.set('k', { data: { user: 'ada' }, meta: meta() }, 60_000, ctx())
    const set = (values: Record<string, unknown>) => Object.assign(Object.create(null), values)
    await store.patch(
      'k',
      { set: set({ notice: 'Saved!' }), delete: [], flash: ['notice'], meta: meta(1) },
      60_000,
      ctx(),
    )
    await store.patch('k', { set: set({ a: 1 }), delete: [], flash: [], meta: meta(2) }, 60_000, ctx())
    await store.touch?.('k', meta(3), 60_000, ctx())
    expect(await store.get('k', ctx())).toEqual({
      data: { user: 'ada', notice: 'Saved!', a: 1 },
      meta: { ...meta(3), flash: ['notice'] },
    })
    await store.patch('k', { set: set({}), delete: ['notice'], flash: [], meta: meta(4) }, 60_000, ctx())
    expect(await store.get('k', ctx())).toEqual({ data: { user: 'ada', a: 1 }, meta: meta(4) })
  })

  it('keeps a flash when the flashing request is held between its read and its write while others commit', async () => {
    const prefix = freshPrefix()
    const held = heldKv()
    const clock = manualClock()
    const options = { secrets: SECRET, now: clock.now, touchInterval: 60 }
    const sessions = createSessions({ ...options, store: denoKvStore({ kv, prefix }) })
    const flashing = createSessions({ ...options, store: denoKvStore({ kv: held.kv, prefix }) })
    const jar = new CookieJar()
    const s0 = await sessions.load(jar.request())
    s0.set('user', 'ada')
    jar.update(await sessions.commit(s0, new Response()))
    clock.advance(61_000)

    // The flasher loads, and its commit is held after its read, before its checked write.
    const flasher = await flashing.load(jar.request())
    const writer = await sessions.load(jar.request())
    const toucher = await sessions.load(jar.request())
    flasher.flash('notice', 'Saved!')
    held.hold()
    const flashCommit = flashing.commit(flasher, new Response())
    await held.reached
    // Another key changes and the session is touched meanwhile: both land first.
    writer.set('a', 1)
    await sessions.commit(writer, new Response())
    await sessions.commit(toucher, new Response())
    held.release()
    // The flasher's check fails, it re-reads and merges: its flash, the other key and the touch all kept.
    await flashCommit
    expect(held.commits).toBe(2)
    const reader = await sessions.load(jar.request())
    expect(reader.get('notice')).toBe('Saved!')
    expect(reader.get('a')).toBe(1)
    await sessions.commit(reader, new Response())
    const after = await sessions.load(jar.request())
    expect(after.has('notice')).toBe(false)
    expect(after.all()).toEqual({ user: 'ada', a: 1 })
  })

  it('resolves true again when a regenerate that landed is retried, leaving the new entry alone', async () => {
    const store = denoKvStore({ kv, prefix: freshPrefix() })
    await store.set('old', { data: { user: 'ada' }, meta: meta() }, 60_000, ctx())
    expect(await store.set('new', { data: { user: 'ada' }, meta: meta(1) }, 60_000, ctx(), 'old')).toBe(true)
    // The reply was lost: the same call again finds the old entry gone and the new one there.
    expect(await store.set('new', { data: { user: 'ada' }, meta: meta(1) }, 60_000, ctx(), 'old')).toBe(true)
    expect(await store.get('new', ctx())).toEqual({ data: { user: 'ada' }, meta: meta(1) })
    expect(await store.get('old', ctx())).toBeNull()
  })

  it('counts flash key names in the value size, refusing with ERR_TOO_LARGE before writing', async () => {
    const store = denoKvStore({ kv, prefix: freshPrefix() })
    // A 33 000-character key is in the data once and in the flash list once: 66 KB, over Deno KV's 64 KiB.
    const name = 'k'.repeat(33_000)
    const data = { [name]: 'v' }
    await expect(
      store.set('k', { data, meta: { ...meta(), flash: [name] } }, 60_000, ctx()),
    ).rejects.toMatchObject({ code: 'ERR_TOO_LARGE' })
    expect(await store.get('k', ctx())).toBeNull()
    // Through a patch too, and a regenerate into it keeps the old record.
    await store.set('k', { data: { user: 'ada' }, meta: meta() }, 60_000, ctx())
    const set = Object.assign(Object.create(null), data)
    await expect(
      store.patch('k', { set, delete: [], flash: [name], meta: meta(1) }, 60_000, ctx()),
    ).rejects.toMatchObject({ code: 'ERR_TOO_LARGE' })
    await expect(
      store.set('new', { data, meta: { ...meta(), flash: [name] } }, 60_000, ctx(), 'k'),
    ).rejects.toMatchObject({ code: 'ERR_TOO_LARGE' })
    expect(await store.get('k', ctx())).toEqual({ data: { user: 'ada' }, meta: meta() })
    // The same data as a plain value fits.
    await store.patch('k', { set, delete: [], flash: [], meta: meta(1) }, 60_000, ctx())
    expect(Object.keys((await store.get('k', ctx()))?.data ?? {})).toEqual(['user', name])
  })

  it('reports Deno KV’s own refusal of a value as ERR_TOO_LARGE, should the estimate ever let one through', async () => {
    const refusal = new TypeError('Value too large (max 65536 bytes)')
    const refusing: DenoKv = {
      ...contendedKv(0),
      set: () => Promise.reject(refusal),
      atomic: () => {
        const op: DenoKvAtomicOperation = {
          check: () => op,
          set: () => op,
          delete: () => op,
          commit: () => Promise.reject(refusal),
        }
        return op
      },
    }
    const prefix = freshPrefix()
    await denoKvStore({ kv, prefix }).set('k', { data: { a: 1 }, meta: meta() }, 60_000, ctx())
    const store = denoKvStore({ kv: refusing, prefix })
    const record = { data: { a: 2 }, meta: meta() }
    const tooLarge = { code: 'ERR_TOO_LARGE', cause: refusal }
    await expect(store.set('k', record, 60_000, ctx())).rejects.toMatchObject(tooLarge)
    await expect(store.set('new', record, 60_000, ctx(), 'k')).rejects.toMatchObject(tooLarge)
    const patch = { set: { a: 2 }, delete: [], flash: [], meta: meta() }
    await expect(store.patch('k', patch, 60_000, ctx())).rejects.toMatchObject(tooLarge)
    // Other failures are left as they are.
    const other = new TypeError('Key too large for write (max 2048 bytes)')
    const failing = denoKvStore({ kv: { ...refusing, set: () => Promise.reject(other) }, prefix })
    await expect(failing.set('k', record, 60_000, ctx())).rejects.toBe(other)
  })

  it('stops waiting between attempts as soon as the sessions layer gives up on the call', async () => {
    const prefix = freshPrefix()
    await denoKvStore({ kv, prefix }).set('k', { data: { a: 1 }, meta: meta() }, 60_000, ctx())
    const always = contendedKv(Number.POSITIVE_INFINITY)
    const store = denoKvStore({ kv: always, prefix, maxAttempts: 1_000 })
    const controller = new AbortController()
    // Timers that never fire: the store's pause between attempts can only end by the abort.
    const realSetTimeout = globalThis.setTimeout
    const stuck = () => 0
    globalThis.setTimeout = stuck as unknown as typeof setTimeout
    let settled: unknown
    try {
      const patch = { set: { b: 2 }, delete: [], flash: [], meta: meta(1) }
      const patching = Promise.resolve(
        store.patch('k', patch, 60_000, { env: undefined, signal: controller.signal }),
      ).then(
        () => 'resolved',
        (error: unknown) => error,
      )
      // The first attempt's check fails; the store then pauses before the next one.
      while (always.commits < 1) await new Promise((resolve) => realSetTimeout(resolve, 1))
      await new Promise((resolve) => realSetTimeout(resolve, 1))
      controller.abort(new Error('storeTimeout'))
      settled = await Promise.race([
        patching,
        new Promise((resolve) => realSetTimeout(() => resolve('still waiting'), 1_000)),
      ])
    } finally {
      globalThis.setTimeout = realSetTimeout
    }
    expect(settled).toMatchObject({ message: 'storeTimeout' })
    expect(always.commits).toBe(1)
  })
})

/** `kv`, recording what each atomic operation holds, and every write made outside one. */
function recordingKv() {
  const operations: string[][] = []
  const plain: string[] = []
  const name = (key: readonly unknown[]) => key.map(String).join('/')
  const recording: DenoKv = {
    get: kv.get.bind(kv),
    getMany: kv.getMany.bind(kv),
    list: kv.list.bind(kv),
    set: (key, value, options) => {
      plain.push(`set ${name(key)}`)
      return kv.set(key, value, options)
    },
    delete: (key) => {
      plain.push(`delete ${name(key)}`)
      return kv.delete(key)
    },
    atomic(): DenoKvAtomicOperation {
      const op = kv.atomic()
      const log: string[] = []
      const wrapped: DenoKvAtomicOperation = {
        check(...checks) {
          for (const check of checks) log.push(`check ${name(check.key)}`)
          op.check(...checks)
          return wrapped
        },
        set(key, value, options) {
          log.push(`set ${name(key)} ${options?.expireIn}`)
          op.set(key, value, options)
          return wrapped
        },
        delete(key) {
          log.push(`delete ${name(key)}`)
          op.delete(key)
          return wrapped
        },
        commit: () => {
          operations.push(log)
          return op.commit()
        },
      }
      return wrapped
    },
  }
  return { kv: recording, operations, plain }
}

describe('denoKvStore: the user index', () => {
  const HASH = /^[A-Za-z0-9_-]{43}$/
  const bound = (user: string, handle: string, data: Record<string, unknown> = {}) => ({
    data,
    meta: { ...meta(1_000), handle, user: { id: `id-${user}`, key: user, agent: null, label: null } },
  })

  /** A browser that signs in as `userId`: an anonymous request, then one that binds the user. */
  async function login(sessions: Sessions<Record<string, unknown>>, userId: string) {
    const jar = new CookieJar()
    const first = await sessions.load(jar.request())
    first.set('a', 1)
    jar.update(await sessions.commit(first, new Response()))
    const s = await sessions.load(jar.request())
    s.setUser(userId)
    jar.update(await sessions.commit(s, new Response()))
    return { jar, session: s }
  }

  it('names the index by hashed user keys: no user id appears in any key, nor in an index entry', async () => {
    const prefix = freshPrefix()
    const sessions = createSessions<Record<string, unknown>>({
      store: denoKvStore({ kv, prefix }),
      secrets: SECRET,
    })
    const ids = ['alice@example.com', 'Bob Smith 42', 'urn:user:7f3a9c']
    for (const id of ids) {
      await login(sessions, id)
      await login(sessions, id)
    }
    const entries = await Array.fromAsync(kv.list({ prefix }))
    // Six sessions and their six index entries; nothing else.
    expect(entries).toHaveLength(12)
    const users = new Set<unknown>()
    for (const { key, value } of entries) {
      const rest = key.slice(prefix.length)
      if (rest.length === 1) expect(String(rest[0])).toMatch(HASH)
      else {
        expect(rest).toHaveLength(3)
        expect(rest[0]).toBe('u')
        expect(String(rest[1])).toMatch(HASH)
        expect(String(rest[2])).toMatch(HASH)
        expect(Object.keys(value as object).sort()).toEqual(['handle', 'ttlEnd'])
        users.add(rest[1])
      }
      for (const id of ids) for (const part of key) expect(String(part)).not.toContain(id)
    }
    expect(users.size).toBe(3)
    expect(await sessions.countUsers()).toBe(3)
    expect(await sessions.count()).toBe(6)
  })

  it('changes a session and its index entry in one atomic operation, with one expireIn', async () => {
    const prefix = freshPrefix()
    const recorded = recordingKv()
    const clock = manualClock()
    const sessions = createSessions({
      store: denoKvStore({ kv: recorded.kv, prefix }),
      secrets: SECRET,
      now: clock.now,
      idleTimeout: 600,
    })
    const at = (key: string) => [...prefix, key].map(String).join('/')
    const entry = (user: string, key: string) => [...prefix, 'u', user, key].map(String).join('/')
    const jar = new CookieJar()
    const anonymous = await sessions.load(jar.request())
    anonymous.set('a', 1)
    jar.update(await sessions.commit(anonymous, new Response()))
    const old = await storageKey(anonymous.id)
    expect(recorded.plain).toEqual([`set ${at(old)}`])

    const login = await sessions.load(jar.request())
    login.setUser('ada')
    jar.update(await sessions.commit(login, new Response()))
    const key = await storageKey(login.id)
    const user = (await denoKvStore({ kv, prefix }).get(key, ctx()))?.meta.user?.key as string
    expect(recorded.operations.at(-1)).toEqual([
      `check ${at(old)}`,
      `delete ${at(old)}`,
      `set ${at(key)} 600000`,
      `set ${entry(user, key)} 600000`,
    ])

    clock.advance(61_000)
    const touched = await sessions.load(jar.request())
    jar.update(await sessions.commit(touched, new Response()))
    expect(recorded.operations.at(-1)).toEqual([
      `check ${at(key)}`,
      `set ${at(key)} 600000`,
      `set ${entry(user, key)} 600000`,
    ])

    const regenerated = await sessions.load(jar.request())
    regenerated.regenerate()
    jar.update(await sessions.commit(regenerated, new Response()))
    const moved = await storageKey(regenerated.id)
    expect(recorded.operations.at(-1)).toEqual([
      `check ${at(key)}`,
      `delete ${at(key)}`,
      `delete ${entry(user, key)}`,
      `set ${at(moved)} 600000`,
      `set ${entry(user, moved)} 600000`,
    ])

    const logout = await sessions.load(jar.request())
    logout.destroy()
    await sessions.commit(logout, new Response())
    expect(recorded.operations.at(-1)).toEqual([`delete ${at(moved)}`, `delete ${entry(user, moved)}`])
    // Only the anonymous session was ever written outside an atomic operation.
    expect(recorded.plain).toEqual([`set ${at(old)}`])
    expect(await Array.fromAsync(kv.list({ prefix }))).toEqual([])
  })

  it('lets an index entry expire with its session: the same ttlEnd, and gone from listing and counting with it', async () => {
    const prefix = freshPrefix()
    const store = denoKvStore({ kv, prefix })
    await store.set('k', bound('A', 'h'), 30, ctx())
    await store.set('long', bound('B', 'h2'), 60_000, ctx())
    const value = (await kv.get<{ ttlEnd: number }>([...prefix, 'k'])).value
    const indexed = (await kv.get<{ ttlEnd: number; handle: string }>([...prefix, 'u', 'A', 'k'])).value
    expect(indexed).toEqual({ handle: 'h', ttlEnd: value?.ttlEnd })
    expect(await store.userEntries?.('A', ctx())).toEqual([{ key: 'k', handle: 'h' }])
    expect(await store.countUsers?.(ctx())).toBe(2)
    await new Promise((resolve) => setTimeout(resolve, 60))
    expect(await store.userEntries?.('A', ctx())).toEqual([])
    expect(await store.getMany?.(['k', 'long'], ctx())).toEqual([null, bound('B', 'h2')])
    expect(await store.countUsers?.(ctx())).toBe(1)
  })

  it('keeps the handle and user through a touch, and extends the index entry with it', async () => {
    const prefix = freshPrefix()
    const store = denoKvStore({ kv, prefix })
    await store.set('k', bound('A', 'h', { a: 1 }), 1_000, ctx())
    const before = (await kv.get<{ ttlEnd: number }>([...prefix, 'u', 'A', 'k'])).value?.ttlEnd ?? 0
    expect(await store.touch?.('k', meta(5_000), 60_000, ctx())).toBe(true)
    expect(await store.get('k', ctx())).toEqual({
      data: { a: 1 },
      meta: { ...bound('A', 'h').meta, ...meta(5_000) },
    })
    const after = (await kv.get<{ ttlEnd: number }>([...prefix, 'u', 'A', 'k'])).value?.ttlEnd ?? 0
    expect(after - before).toBeGreaterThan(50_000)
  })

  it('revokes only the sessions of the user it names, more than fit in one read or one operation', async () => {
    const prefix = freshPrefix()
    const store = denoKvStore({ kv, prefix })
    const keys = Array.from({ length: 120 }, (_, i) => `a${i}`)
    for (const key of keys) await store.set(key, bound('A', `h-${key}`), 60_000, ctx())
    await store.set('b', bound('B', 'hb'), 60_000, ctx())
    await store.set('anon', { data: {}, meta: meta() }, 60_000, ctx())
    expect(await store.userEntries?.('A', ctx())).toHaveLength(120)
    expect(await store.getMany?.(keys, ctx())).toEqual(keys.map((key) => bound('A', `h-${key}`)))
    expect(await store.revokeUser?.('A', [...keys, 'b', 'anon', 'a0', 'missing'], ctx())).toBe(120)
    expect(await store.userEntries?.('A', ctx())).toEqual([])
    expect(await store.getMany?.(['a0', 'a119', 'b', 'anon'], ctx())).toEqual([
      null,
      null,
      bound('B', 'hb'),
      { data: {}, meta: meta() },
    ])
    expect(await store.userEntries?.('B', ctx())).toEqual([{ key: 'b', handle: 'hb' }])
    expect(await store.countUsers?.(ctx())).toBe(1)
    expect(await store.count?.(ctx())).toBe(2)
  })

  it('a revoked session’s next request is a fresh session, and neither the session nor its entry is left', async () => {
    const prefix = freshPrefix()
    const sessions = createSessions<Record<string, unknown>>({
      store: denoKvStore({ kv, prefix }),
      secrets: SECRET,
    })
    const phone = await login(sessions, 'ada')
    const laptop = await login(sessions, 'ada')
    expect(await sessions.revokeUserSession('ada', phone.session.handle)).toBe(true)
    const gone = await storageKey(phone.session.id)
    const keys = (await Array.fromAsync(kv.list({ prefix }))).map((entry) => entry.key)
    expect(keys).toHaveLength(2)
    for (const key of keys) expect(key).not.toContain(gone)
    const next = await sessions.load(phone.jar.request())
    expect([next.isNew, next.userId, next.get('a')]).toEqual([true, null, undefined])
    expect((await sessions.load(laptop.jar.request())).userId).toBe('ada')
  })

  it('ignores damaged index entries: no error, not listed, not counted', async () => {
    const prefix = freshPrefix()
    const store = denoKvStore({ kv, prefix })
    await store.set('k', bound('A', 'h'), 60_000, ctx())
    const later = Date.now() + 60_000
    await kv.set([...prefix, 'u', 'A', 'x'], 'not an entry')
    await kv.set([...prefix, 'u', 'A', 'y'], { handle: 7, ttlEnd: later })
    await kv.set([...prefix, 'u', 'A', 'z', 'deeper'], { handle: 'h', ttlEnd: later })
    await kv.set([...prefix, 'u', 'A', 12], { handle: 'h', ttlEnd: later })
    await kv.set([...prefix, 'u', 'B', 'x'], { handle: 'h' })
    await kv.set([...prefix, 'u', 'C'], { handle: 'h', ttlEnd: later })
    await kv.set([...prefix, 'u', 3, 'x'], { handle: 'h', ttlEnd: later })
    expect(await store.userEntries?.('A', ctx())).toEqual([{ key: 'k', handle: 'h' }])
    expect(await store.userEntries?.('B', ctx())).toEqual([])
    expect(await store.countUsers?.(ctx())).toBe(1)
    // A foreign value under a session key named by the index reads as missing in a listing, and is left alone.
    await kv.set([...prefix, 'foreign'], 'not a session')
    expect(await store.getMany?.(['foreign', 'k'], ctx())).toEqual([null, bound('A', 'h')])
    expect(await store.revokeUser?.('A', ['foreign'], ctx())).toBe(0)
    expect((await kv.get([...prefix, 'foreign'])).value).toBe('not a session')
  })

  it('keeps records written before handles and users working, and writes no index entry for them', async () => {
    const prefix = freshPrefix()
    const store = denoKvStore({ kv, prefix })
    await store.set('k', { data: { a: 1 }, meta: meta() }, 60_000, ctx())
    const patch = { set: { b: 2 }, delete: [], flash: [], meta: meta(1) }
    expect(await store.patch('k', patch, 60_000, ctx())).toBe(true)
    expect(await store.touch?.('k', meta(2), 60_000, ctx())).toBe(true)
    expect(await store.get('k', ctx())).toEqual({ data: { a: 1, b: 2 }, meta: meta(2) })
    expect((await Array.fromAsync(kv.list({ prefix }))).map((entry) => entry.key)).toEqual([[...prefix, 'k']])
    expect(await store.countUsers?.(ctx())).toBe(0)
    await store.delete('k', ctx())
    expect(await Array.fromAsync(kv.list({ prefix }))).toEqual([])
  })
})
