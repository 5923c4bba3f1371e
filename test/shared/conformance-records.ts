/**
 * @module The conformance suite's write-answer part: with `ctx.returnRecord`, `patch` and `touch` answer the record
 * as the store holds it after the write (what the cookie cache reissues its cookie from), and without it exactly
 * `true` or `false`. Registered by `describeStoreConformance` for server stores.
 */

import type {
  RecordPatch,
  ServerStore,
  SessionRecord,
  SessionStore,
  StoreContext,
  WriteAnswer,
} from 'edge-session'
import { describe, expect, it } from 'vitest'

declare module './conformance.ts' {
  interface ConformanceOptions {
    /**
     * False for a store that documents that it cannot answer the record after a write (it answers `true` even
     * with `ctx.returnRecord`). Default true: every other store must answer the record, so none regresses silently.
     */
    returnsRecord?: boolean
  }
}

export interface RecordSuiteOptions {
  kind: 'server' | 'cookie'
  createStore: () => SessionStore | Promise<SessionStore>
  env?: (() => unknown) | undefined
  returnsRecord?: boolean | undefined
}

const TTL = 600_000
const USER_KEY = 'dXNlci1rZXktMDEyMzQ1Njc4OWFiY2RlZmdoaWprbG0'
const HANDLE = 'aGFuZGxlLTAxMjM0NTY3OD'
/** Keys a store must keep as plain data, whatever it does with names. */
const ODD_KEYS = ['__proto__', 'constructor', 'a.b', 'd:x', 'quote"d', 'ż 🍣']

/** A fresh hashed key (43 base64url characters, as `base64url(SHA-256(id))` is). */
function freshKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32))
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

/** A null-prototype data object holding `entries` (so `__proto__` is a plain key). */
function data(entries: Array<[string, unknown]>): Record<string, unknown> {
  const object: Record<string, unknown> = Object.create(null)
  for (const [key, value] of entries) object[key] = value
  return object
}

function times(at: number) {
  return { createdAt: 1_000, lastSeenAt: at, expiresAt: at + TTL }
}

function patchOf(set: Array<[string, unknown]>, remove: string[], flash: string[], at: number): RecordPatch {
  return { set: data(set), delete: remove, flash, meta: times(at) }
}

/** The record a store answered, checked for its shape, with flash markers in a stable order. */
function asRecord(answer: WriteAnswer): SessionRecord {
  expect(typeof answer, 'the write should answer the record').toBe('object')
  const record = answer as SessionRecord
  // Every key a plain own key: nothing inherited from Object.prototype, no `__proto__` turned into a prototype.
  expect('hasOwnProperty' in record.data).toBe(false)
  return normal(record)
}

function normal(record: SessionRecord): SessionRecord {
  const meta = { ...record.meta }
  if (meta.flash) meta.flash = [...meta.flash].sort()
  return { data: { ...record.data }, meta }
}

/** Own keys and values of `object`, sorted: compares `__proto__` as the plain key it is. */
function entries(object: Record<string, unknown>): Array<[string, unknown]> {
  return Object.keys(object)
    .sort()
    .map((key) => [key, object[key]])
}

export function describeRecordAnswers(options: RecordSuiteOptions): void {
  if (options.kind !== 'server') return
  const returnsRecord = options.returnsRecord ?? true
  const ctx = (returnRecord?: boolean): StoreContext => ({
    env: options.env?.(),
    signal: new AbortController().signal,
    user: { user: USER_KEY, handle: HANDLE },
    ...(returnRecord === undefined ? {} : { returnRecord }),
  })

  /** A store holding one record bound to a user, with odd keys and flash markers. */
  async function seeded() {
    const store = (await options.createStore()) as ServerStore
    const key = freshKey()
    const record: SessionRecord = {
      data: data([
        ['keep', 1],
        ['gone', 'x'],
        ['old flash', 'read me'],
        ['was flash', 'then set plainly'],
        ...ODD_KEYS.map((name): [string, unknown] => [name, { of: name }]),
      ]),
      meta: {
        ...times(2_000),
        flash: ['old flash', 'was flash'],
        handle: HANDLE,
        user: { id: 'ada', key: USER_KEY, agent: 'TestBrowser/1.0', label: null },
      },
    }
    expect(await store.set(key, record, TTL, ctx())).toBe(true)
    return { store, key, record }
  }

  const expectedUser = { id: 'ada', key: USER_KEY, agent: 'TestBrowser/1.0', label: null }

  describe('write answers (returnRecord)', () => {
    it('patch answers the merged record, with keys another writer set after this request loaded', async () => {
      const { store, key } = await seeded()
      // This request loaded before another one patched: the other's keys and markers must be in the answer.
      expect(
        await store.patch(
          key,
          patchOf(
            [
              ['other', 'theirs'],
              ['note', 'hi'],
            ],
            [],
            ['note'],
            3_000,
          ),
          TTL,
          ctx(),
        ),
      ).toBe(true)
      const mine = patchOf(
        [
          ['keep', 2],
          ['was flash', 'plain now'],
          ['fresh flash', { once: true }],
          ['__proto__', 'mine'],
        ],
        ['gone', 'constructor'],
        ['fresh flash'],
        4_000,
      )
      const answer = await store.patch(key, mine, TTL, ctx(true))
      const stored = await store.get(key, ctx())
      expect(stored).not.toBeNull()
      const expected = data([
        ['keep', 2],
        ['old flash', 'read me'],
        ['was flash', 'plain now'],
        ['fresh flash', { once: true }],
        ['other', 'theirs'],
        ['note', 'hi'],
        ['__proto__', 'mine'],
        ['a.b', { of: 'a.b' }],
        ['d:x', { of: 'd:x' }],
        ['quote"d', { of: 'quote"d' }],
        ['ż 🍣', { of: 'ż 🍣' }],
      ])
      expect(entries((stored as SessionRecord).data)).toEqual(entries(expected))
      expect(normal(stored as SessionRecord).meta).toEqual({
        ...times(4_000),
        flash: ['fresh flash', 'note', 'old flash'],
        handle: HANDLE,
        user: expectedUser,
      })
      if (!returnsRecord) {
        expect(answer).toBe(true)
        return
      }
      const record = asRecord(answer)
      expect(entries(record.data)).toEqual(entries(expected))
      expect(Object.hasOwn(record.data, '__proto__')).toBe(true)
      expect(Object.hasOwn(record.data, 'constructor')).toBe(false)
      // Exactly what a load would read now.
      expect(record).toEqual(normal(stored as SessionRecord))
    })

    it('touch answers the record with its data and flash markers untouched and the new times', async () => {
      const { store, key, record } = await seeded()
      // Another request's write after this one loaded: a touch's answer holds it too.
      expect(await store.patch(key, patchOf([['other', 'theirs']], ['gone'], [], 3_000), TTL, ctx())).toBe(
        true,
      )
      // A store without a TTL-only touch is touched by the sessions layer with an empty patch.
      const answer = store.touch
        ? await store.touch(key, times(5_000), TTL, ctx(true))
        : await store.patch(key, patchOf([], [], [], 5_000), TTL, ctx(true))
      const expectedData = data([
        ...entries(record.data).filter(([name]) => name !== 'gone'),
        ['other', 'theirs'],
      ])
      const expectedMeta = {
        ...times(5_000),
        flash: ['old flash', 'was flash'],
        handle: HANDLE,
        user: expectedUser,
      }
      const stored = normal((await store.get(key, ctx())) as SessionRecord)
      expect(entries(stored.data)).toEqual(entries(expectedData))
      expect(stored.meta).toEqual(expectedMeta)
      if (!returnsRecord) {
        expect(answer).toBe(true)
        return
      }
      const answered = asRecord(answer)
      expect(entries(answered.data)).toEqual(entries(expectedData))
      expect(answered.meta).toEqual(expectedMeta)
      expect(answered).toEqual(stored)
    })

    it('answers false for a missing or destroyed record, and writes nothing', async () => {
      const { store, key } = await seeded()
      await store.delete(key, ctx())
      const missing = freshKey()
      for (const target of [key, missing]) {
        expect(await store.patch(target, patchOf([['a', 1]], [], ['a'], 3_000), TTL, ctx(true))).toBe(false)
        const touched = store.touch
          ? await store.touch(target, times(3_000), TTL, ctx(true))
          : await store.patch(target, patchOf([], [], [], 3_000), TTL, ctx(true))
        expect(touched).toBe(false)
        expect(await store.get(target, ctx())).toBeNull()
      }
      if (store.count) expect(await store.count(ctx())).toBe(0)
    })

    it('answers exactly true or false without returnRecord', async () => {
      const { store, key } = await seeded()
      for (const flag of [undefined, false]) {
        expect(await store.patch(key, patchOf([['a', 1]], [], [], 3_000), TTL, ctx(flag))).toBe(true)
        if (store.touch) expect(await store.touch(key, times(4_000), TTL, ctx(flag))).toBe(true)
        const missing = freshKey()
        expect(await store.patch(missing, patchOf([['a', 1]], [], [], 3_000), TTL, ctx(flag))).toBe(false)
        if (store.touch) expect(await store.touch(missing, times(4_000), TTL, ctx(flag))).toBe(false)
      }
      expect((await store.get(key, ctx()))?.data.a).toBe(1)
    })
  })
}
