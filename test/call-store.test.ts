/** @module callStore(): settled and local store calls run with no timer and no AbortSignal made. */
import type { ServerStore, StoreContext } from 'edge-session'
import { memoryStore } from 'edge-session/stores/memory'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { callStore } from '../src/sessions.ts'

// Spread: the same methods, but not `local` (the property does not spread), like any store that may wait.
const store: ServerStore = { ...memoryStore() }

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

  it("makes a local store's calls directly, failures still ERR_STORE", async () => {
    const local = memoryStore()
    expect(local.local).toBe(true)
    // A store spread from it, with methods that may wait, is not local (the property does not spread).
    expect({ ...local }.local).toBeUndefined()
    vi.useFakeTimers()
    const signalGetter = vi.spyOn(AbortController.prototype, 'signal', 'get')
    expect(await callStore(local, 5000, undefined, 'count', (ctx) => local.count(ctx))).toBe(0)
    expect(vi.getTimerCount()).toBe(0)
    expect(signalGetter).not.toHaveBeenCalled()
    signalGetter.mockRestore()
    const error = await callStore(local, 5000, undefined, 'read', async () => {
      throw new TypeError('broken')
    }).catch((e: unknown) => e)
    expect(error).toMatchObject({
      code: 'ERR_STORE',
      message: expect.stringMatching(/memory session store failed to read: broken/),
    })
  })
})
