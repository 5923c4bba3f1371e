/** @module callStore(): plain answers and settled calls run with no timer and no AbortSignal made. */
import { createSessions, type ServerStore, type Sessions, type StoreContext } from 'edge-session'
import { memoryStore } from 'edge-session/stores/memory'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { callStore } from '../../src/store-call.ts'

const store: ServerStore = memoryStore()

afterEach(() => {
  vi.useRealTimers()
})

describe('callStore', () => {
  it('sets no timer and makes no signal for a call that has already settled', async () => {
    vi.useFakeTimers()
    const signalGetter = vi.spyOn(AbortController.prototype, 'signal', 'get')
    const call = callStore(store, 5000, undefined, 'read', async () => 42)
    expect(vi.getTimerCount()).toBe(0)
    expect(await call).toBe(42)
    expect(vi.getTimerCount()).toBe(0)
    expect(signalGetter).not.toHaveBeenCalled()
    signalGetter.mockRestore()
  })

  it('gives a store that reads its signal one that is not aborted', async () => {
    let seen: StoreContext | undefined
    await callStore(store, 5000, undefined, 'read', async (ctx) => {
      seen = ctx
      return ctx.signal.aborted
    })
    expect(seen?.signal.aborted).toBe(false)
  })

  it('turns a settled failure into ERR_STORE with the cause', async () => {
    const cause = new Error('disk on fire')
    const error = await callStore(store, 5000, undefined, 'read', async () => {
      throw cause
    }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'ERR_STORE', cause, message: expect.stringMatching(/disk on fire/) })
  })

  it('times a pending call out, aborting the signal the store was given, and clears its timer when it answers', async () => {
    vi.useFakeTimers()
    let signal: AbortSignal | undefined
    const hanging = callStore(store, 50, undefined, 'write', (ctx) => {
      signal = ctx.signal
      return new Promise<never>(() => {})
    })
    const outcome = hanging.catch((e: unknown) => e)
    await vi.advanceTimersByTimeAsync(49)
    expect(signal?.aborted).toBe(false)
    await vi.advanceTimersByTimeAsync(1)
    expect(await outcome).toMatchObject({ code: 'ERR_STORE', message: expect.stringMatching(/within 50 ms/) })
    expect(signal?.aborted).toBe(true)

    let answer: (value: string) => void = () => {}
    const slow = callStore(store, 50, undefined, 'read', () => new Promise<string>((r) => (answer = r)))
    await vi.advanceTimersByTimeAsync(10)
    expect(vi.getTimerCount()).toBe(1)
    answer('late but in time')
    expect(await slow).toBe('late but in time')
    expect(vi.getTimerCount()).toBe(0)
  })

  it('takes a plain answer at once, with no timer and no signal; a throw is still ERR_STORE', async () => {
    const local = memoryStore()
    vi.useFakeTimers()
    const signalGetter = vi.spyOn(AbortController.prototype, 'signal', 'get')
    const answer = callStore(local, 5000, undefined, 'count', () => local.count())
    expect(answer).toBe(0)
    expect(vi.getTimerCount()).toBe(0)
    expect(signalGetter).not.toHaveBeenCalled()
    signalGetter.mockRestore()
    const error = await Promise.resolve(
      callStore(local, 5000, undefined, 'read', () => {
        throw new TypeError('broken')
      }),
    ).catch((e: unknown) => e)
    expect(error).toMatchObject({
      code: 'ERR_STORE',
      message: expect.stringMatching(/memory session store failed to read: broken/),
    })
  })
})

describe('a store whose get answers at once', () => {
  const SECRET = 'a-secret-of-at-least-32-characters-0123'
  const request = (cookie?: string) =>
    new Request('https://app.example/', cookie ? { headers: { cookie } } : undefined)

  async function sessionCookie(sessions: Sessions<{ n?: number }>): Promise<string> {
    const s = await sessions.load(request())
    s.set('n', 1)
    const response = await sessions.commit(s, new Response(null))
    return (response.headers.getSetCookie()[0] ?? '').split(';')[0] as string
  }

  it('is what load reads through, its failure an ERR_STORE', async () => {
    const base = memoryStore()
    let broken = false
    const get = (key: string, c: StoreContext) => {
      if (broken) throw new Error('memory gone')
      return base.get(key, c)
    }
    const sessions = createSessions<{ n?: number }>({ store: { ...base, get }, secrets: SECRET })
    const cookie = await sessionCookie(sessions)
    expect((await sessions.load(request(cookie))).get('n')).toBe(1)
    broken = true
    await expect(sessions.load(request(cookie))).rejects.toMatchObject({
      code: 'ERR_STORE',
      message: expect.stringMatching(/memory session store failed to read: memory gone/),
    })
  })

  it('a wrapper whose get waits gets the timeout, with no flag to set', async () => {
    const hanging: ServerStore = { ...memoryStore(), get: () => new Promise(() => {}) }
    const sessions = createSessions<{ n?: number }>({ store: hanging, secrets: SECRET, storeTimeout: 50 })
    const cookie = await sessionCookie(sessions)
    await expect(sessions.load(request(cookie))).rejects.toMatchObject({
      code: 'ERR_STORE',
      message: expect.stringMatching(/within 50 ms/),
    })
  })
})
