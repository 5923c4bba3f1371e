/** @module Wraps a server store to record every call the sessions layer makes to it. */

import type { ServerStore } from 'edge-session'

export interface StoreCall {
  method:
    | 'get'
    | 'set'
    | 'patch'
    | 'touch'
    | 'delete'
    | 'count'
    | 'userEntries'
    | 'getMany'
    | 'revokeUser'
    | 'countUsers'
  key?: string
  ttl?: number
  replaces?: string
}

/** The same store, recording its calls in `calls` (clear it between steps with `calls.length = 0`). */
export type CountingStore = ServerStore & { calls: StoreCall[] }

export function countingStore(store: ServerStore): CountingStore {
  const calls: StoreCall[] = []
  const wrapped: CountingStore = {
    kind: 'server',
    name: store.name,
    calls,
    get: (key, ctx) => {
      calls.push({ method: 'get', key })
      return store.get(key, ctx)
    },
    set: (key, record, ttl, ctx, replaces) => {
      calls.push({ method: 'set', key, ttl, ...(replaces ? { replaces } : {}) })
      return store.set(key, record, ttl, ctx, replaces)
    },
    patch: (key, patch, ttl, ctx) => {
      calls.push({ method: 'patch', key, ttl })
      return store.patch(key, patch, ttl, ctx)
    },
    delete: (key, ctx) => {
      calls.push({ method: 'delete', key })
      return store.delete(key, ctx)
    },
  }
  if (store.minTtl !== undefined) Object.assign(wrapped, { minTtl: store.minTtl })
  if (store.minTouchInterval !== undefined)
    Object.assign(wrapped, { minTouchInterval: store.minTouchInterval })
  if (store.validate) wrapped.validate = store.validate.bind(store)
  const { touch, count, userEntries, getMany, revokeUser, countUsers } = store
  if (userEntries) {
    wrapped.userEntries = (user, ctx) => {
      calls.push({ method: 'userEntries' })
      return userEntries.call(store, user, ctx)
    }
  }
  if (getMany) {
    wrapped.getMany = (keys, ctx) => {
      calls.push({ method: 'getMany' })
      return getMany.call(store, keys, ctx)
    }
  }
  if (revokeUser) {
    wrapped.revokeUser = (user, keys, ctx) => {
      calls.push({ method: 'revokeUser' })
      return revokeUser.call(store, user, keys, ctx)
    }
  }
  if (countUsers) {
    wrapped.countUsers = (ctx) => {
      calls.push({ method: 'countUsers' })
      return countUsers.call(store, ctx)
    }
  }
  if (touch) {
    wrapped.touch = (key, meta, ttl, ctx) => {
      calls.push({ method: 'touch', key, ttl })
      return touch.call(store, key, meta, ttl, ctx)
    }
  }
  if (count) {
    wrapped.count = (ctx) => {
      calls.push({ method: 'count' })
      return count.call(store, ctx)
    }
  }
  return wrapped
}
