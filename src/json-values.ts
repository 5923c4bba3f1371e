/** @module Session values are plain JSON data: checked and copied in on `set`, copied out on `get`. */

import { SessionError } from './errors.ts'

/** Deepest nesting accepted in a value, so a hostile structure cannot exhaust the stack. */
const MAX_DEPTH = 64

/** A copy of a stored value for the caller: changing it changes nothing stored. */
export function copyOut(value: unknown): unknown {
  return typeof value === 'object' && value !== null ? structuredClone(value) : value
}

/**
 * A plain-JSON copy of `value`, or `ERR_SERIALIZE`. Stricter than JSON.stringify, which would silently turn
 * NaN into null, drop undefined and functions, and turn a Date into a string: data must come back as it went in.
 */
export function copyIn(value: unknown, key: string): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value
  if (typeof value === 'number') {
    if (Number.isFinite(value)) return value
    throw serializeError(key, key, 'a non-finite number')
  }
  assertJson(value, key, 0, [])
  return JSON.parse(JSON.stringify(value))
}

function assertJson(value: unknown, path: string, depth: number, ancestors: object[]): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw serializeError(path, path, 'a non-finite number')
    return
  }
  if (typeof value !== 'object') throw serializeError(path, path, `a ${typeof value}`)
  if (depth >= MAX_DEPTH) throw serializeError(path, path, `nested deeper than ${MAX_DEPTH} levels`)
  if (ancestors.includes(value)) throw serializeError(path, path, 'a circular reference')
  ancestors.push(value)
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) throw serializeError(path, `${path}[${i}]`, 'a hole in an array')
      assertJson(value[i], `${path}[${i}]`, depth + 1, ancestors)
    }
  } else {
    const proto = Object.getPrototypeOf(value)
    if (proto !== Object.prototype && proto !== null) {
      throw serializeError(path, path, `an instance of ${value.constructor?.name ?? 'a class'}`)
    }
    for (const key of Reflect.ownKeys(value)) {
      if (typeof key !== 'string') throw serializeError(path, path, 'a symbol key')
      const item = (value as Record<string, unknown>)[key]
      if (item === undefined) throw serializeError(path, `${path}.${key}`, 'undefined')
      assertJson(item, `${path}.${key}`, depth + 1, ancestors)
    }
  }
  ancestors.pop()
}

function serializeError(key: string, path: string, what: string): SessionError {
  return new SessionError('ERR_SERIALIZE', `Session value "${key}" is not JSON data: ${path} is ${what}`)
}
