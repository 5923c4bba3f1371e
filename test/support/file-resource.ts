/**
 * @module A resource a test file starts once, before its tests, and stops after them (a server, an endpoint),
 * held by module-level code through a stand-in: suites registered at load time can capture it at once.
 */
import { afterAll, beforeAll } from 'vitest'

/**
 * Registers `beforeAll(start)` (with `timeout`, else the configured hook timeout) and `afterAll(stop)`, in the
 * file or in the describe block it is called in, and returns a stand-in for the resource: every property read,
 * write and method call reaches the resource once `start` has made it, and throws before.
 */
export function fileResource<T extends object>(
  start: () => Promise<T>,
  stop: (resource: T) => Promise<void>,
  timeout?: number,
): T {
  let resource: T | undefined
  beforeAll(async () => {
    resource = await start()
  }, timeout)
  afterAll(async () => {
    if (resource) await stop(resource)
  })
  const current = (): T => {
    if (!resource) throw new Error('a file resource used before its beforeAll hook made it')
    return resource
  }
  return new Proxy({} as T, {
    get(_, key) {
      const target = current()
      const value = Reflect.get(target, key)
      return typeof value === 'function' ? value.bind(target) : value
    },
    set: (_, key, value) => Reflect.set(current(), key, value),
    has: (_, key) => Reflect.has(current(), key),
  })
}
