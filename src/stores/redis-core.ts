/** @module @internal createRedisStore: the one store behind redisStore and upstashStore (docs/redis.md). */

import type {
  RecordPatch,
  ServerStore,
  SessionRecord,
  StoreContext,
  UserEntry,
  WriteAnswer,
} from '../store.ts'
import { decodeRecord, patchFields, recordFields, timeFields } from './redis-encoding.ts'
import { cleanError, isNoScript, unexpected } from './redis-errors.ts'
import { Keys, LIVE_SET, type LuaScript, SCRIPTS, USER_INDEX, USERS_SET } from './redis-scripts.ts'
import { storeConfigError } from './shared.ts'

/**
 * What a client adapter provides: three commands, one round trip each. Replies are passed on as the client gives
 * them; the store validates their shape, and cleans any error of session data before it goes further.
 */
export interface RedisCommands {
  /** `HGETALL key`: Redis's flat `[field, value, ...]` array, or an object of those pairs, or null when empty. */
  hgetall(key: string, signal: AbortSignal): Promise<unknown>
  /**
   * `EVAL script numkeys ...keys ...args`: the script's reply, integers as numbers. `write` is false for the
   * count script, whose only writes prune lapsed members and may be lost without harm: a client that waits for
   * replicas after each write (`WAIT`) need not wait for it.
   */
  eval(
    script: string,
    keys: readonly string[],
    args: readonly string[],
    signal: AbortSignal,
    write?: boolean,
  ): Promise<unknown>
  /** `EVALSHA sha1 numkeys ...`: as `eval`; rejects with Redis's `NOSCRIPT` error when the server lacks it. */
  evalsha(
    sha1: string,
    keys: readonly string[],
    args: readonly string[],
    signal: AbortSignal,
    write?: boolean,
  ): Promise<unknown>
}

export interface RedisStoreOptions {
  /** The store's `name`: `'upstash'`, `'redis'`; its factory, for messages, is `name + 'Store'`. */
  name: string
  /** Put before every key this store writes. */
  prefix: string
  commands: RedisCommands
  /**
   * The client is a Redis Cluster client: the keys of one script must share a hash slot (CROSSSLOT otherwise).
   * Unless the prefix's hash tag pins every key to one slot (`'{sess}:'`), the store keeps no live set (no
   * `count`) nor users set (no `countUsers`), regenerates in two steps, new record first, and writes each user
   * entry beside its record rather than with it (docs/redis.md, "Cluster").
   */
  cluster?: boolean
}

/**
 * A {@link ServerStore} over Redis hashes, for any client that can run HGETALL, EVAL and EVALSHA. Every call is
 * one round trip (on a Cluster without hash tag, see docs/redis.md); writes run as one Lua script each, so each
 * is atomic and none is ever half-applied. A session bound to a user has an entry in its user's index, written,
 * extended, moved and removed by the same script as its record.
 */
export function createRedisStore({ name, prefix, commands, cluster }: RedisStoreOptions): ServerStore {
  if (typeof prefix !== 'string') {
    throw storeConfigError(`${name}Store`, `prefix must be a string, got ${typeof prefix}`)
  }
  // Without one slot for all keys: no live set, no users set, and each user's entry by a script of its own.
  const spread = cluster === true && !pinsSlot(prefix)
  const liveSet = prefix + LIVE_SET
  const usersSet = prefix + USERS_SET
  const indexOf = (user: string) => prefix + USER_INDEX + checkName(user, 'user key')
  // Scripts this store has sent whole: the server caches a script it ran, so from then on EVALSHA names it.
  const sent = new Set<LuaScript>()

  /**
   * One script, by its SHA-1 once this store has sent it whole, else whole. A server that lacks it (restarted,
   * failed over, SCRIPT FLUSH, another Cluster node) answers NOSCRIPT without running anything: it is sent whole
   * then, one extra round trip, once.
   */
  async function run(
    script: LuaScript,
    keys: readonly string[],
    args: readonly string[],
    signal: AbortSignal,
    write?: boolean,
  ): Promise<unknown> {
    signal.throwIfAborted()
    // What a client's error may echo: scrubbed from it (see cleanError).
    const echoed = [...keys, ...args, script.text]
    if (sent.has(script)) {
      try {
        return await commands.evalsha(await script.sha1(), keys, args, signal, write)
      } catch (error) {
        if (!isNoScript(error)) throw cleanError(error, echoed)
      }
      signal.throwIfAborted()
    }
    try {
      const reply = await commands.eval(script.text, keys, args, signal, write)
      sent.add(script)
      return reply
    } catch (error) {
      throw cleanError(error, echoed)
    }
  }

  /** One HGETALL, its error cleaned. */
  async function hgetall(key: string, signal: AbortSignal): Promise<SessionRecord | null> {
    signal.throwIfAborted()
    const full = prefix + key
    let reply: unknown
    try {
      reply = await commands.hgetall(full, signal)
    } catch (error) {
      throw cleanError(error, [full, key])
    }
    return decodeRecord(reply)
  }

  /**
   * The patch script (patch and touch): `body` is its ARGV after the first five. With `returnRecord`, its twin
   * that answers the record's HGETALL after the write instead of 1: one round trip either way.
   */
  async function update(
    key: string,
    ttl: number,
    body: string[],
    { signal, user, returnRecord }: StoreContext,
  ): Promise<WriteAnswer> {
    const ttlText = ttlArg(ttl)
    const script = returnRecord ? SCRIPTS.patchRecord : SCRIPTS.patch
    const answer = returnRecord ? writtenRecord : written
    if (!spread) {
      const keys = new Keys().add('r', prefix + key).add('l', liveSet)
      if (user) keys.add('i', indexOf(user.user)).add('u', usersSet)
      const args = [keys.roles, ttlText, key, memberOf(user, key), user?.user ?? '', ...body]
      return answer(await run(script, keys.keys, args, signal))
    }
    const patched = run(script, [prefix + key], ['r', ttlText, key, '', '', ...body], signal)
    if (!user) return answer(await patched)
    const [reply] = await Promise.all([patched, addEntry(user, key, ttlText, signal)])
    return answer(reply)
  }

  /** Cluster without hash tag: the entry of the record under `key`, by a script of its own (see ENTRY_SCRIPT). */
  function addEntry(user: UserEntry, key: string, ttlText: string, signal: AbortSignal): Promise<unknown> {
    const args = ['i', ttlText, key, memberOf(user, key), user.user]
    return run(SCRIPTS.entry, [indexOf(user.user)], args, signal)
  }

  const store: ServerStore = {
    kind: 'server',
    name,

    get: (key, { signal }) => hgetall(key, signal),

    async set(key, record, ttl, ctx, replaces) {
      const { signal, user } = ctx
      const ttlText = ttlArg(ttl)
      const fields = recordFields(record)
      if (!spread) {
        const replaced = replaces === undefined ? undefined : ctx.replacedUser
        const keys = new Keys().add('r', prefix + key).add('l', liveSet)
        if (replaces !== undefined) keys.add('o', prefix + replaces)
        if (user) keys.add('i', indexOf(user.user))
        if (replaced) keys.add('j', indexOf(replaced.user))
        if (user || replaced) keys.add('u', usersSet)
        const args = [
          keys.roles,
          ttlText,
          key,
          memberOf(user, key),
          user?.user ?? '',
          replaces ?? '',
          replaces === undefined ? '' : memberOf(replaced, replaces),
          replaced?.user ?? '',
          ...fields,
        ]
        return written(await run(SCRIPTS.set, keys.keys, args, signal))
      }
      // Cluster without hash tag: the record alone, its entry beside it (a new id is in no browser until this
      // resolves, so an entry without its record, or the reverse, is never a session someone holds).
      const recordKeys = [prefix + key]
      const args = ['r', ttlText, key, '', '', '', '', '', ...fields]
      const indexed = user ? addEntry(user, key, ttlText, signal) : undefined
      if (replaces === undefined) {
        const [reply] = await Promise.all([run(SCRIPTS.set, recordKeys, args, signal), indexed])
        return written(reply)
      }
      // Two slots, two steps: the new record first, so a failure leaves the old one as it was (the new one,
      // whose id nobody has received, lapses with its TTL). Then the old one is taken; when it was gone already
      // and this is no retry of a write that landed, a concurrent destroy (or expiry) got there first: the new
      // record is deleted again, as the one-slot script would not have written it. The replaced record's entry
      // stays until its deadline (docs/redis.md): removing it first could hide a session that is still live.
      const [created] = await Promise.all([run(SCRIPTS.setNew, recordKeys, args, signal), indexed])
      if (created !== 1 && created !== 2) throw unexpected('write', created)
      const took = written(await run(SCRIPTS.take, [prefix + replaces], [], signal))
      if (took || created === 2) return true
      await run(SCRIPTS.delete, recordKeys, ['r', '', key, '', ''], signal)
      return false
    },

    async patch(key, patch: RecordPatch, ttl, ctx) {
      const { pairs, deleted } = patchFields(patch)
      return update(key, ttl, [String(pairs.length / 2), ...pairs, ...deleted], ctx)
    },

    // The times and the TTL only: no data field nor marker is sent, so a touch cannot undo a concurrent write.
    async touch(key, times, ttl, ctx) {
      const pairs = timeFields(times)
      return update(key, ttl, [String(pairs.length / 2), ...pairs], ctx)
    },

    async delete(key, { signal, user }) {
      const keys = new Keys().add('r', prefix + key)
      // Cluster without hash tag: the entry stays until its deadline; listing drops it, its record being gone.
      const entry = spread ? undefined : user
      if (!spread) keys.add('l', liveSet)
      if (entry) keys.add('i', indexOf(entry.user)).add('u', usersSet)
      await run(
        SCRIPTS.delete,
        keys.keys,
        [keys.roles, '', key, memberOf(entry, key), entry?.user ?? ''],
        signal,
      )
    },

    async count({ signal }) {
      return countOf('count', await run(SCRIPTS.count, [liveSet], [], signal, false))
    },

    async userEntries(user, { signal }) {
      const reply = await run(SCRIPTS.entries, [indexOf(user)], [], signal, false)
      if (!Array.isArray(reply)) throw unexpected('user index', reply)
      const entries: Array<{ key: string; handle: string }> = []
      for (const member of reply) {
        if (typeof member !== 'string') throw unexpected('user index', reply)
        // `<handle>.<key>`, both base64url: anything else is no entry this store wrote, and names no record.
        const dot = member.indexOf('.')
        if (dot > 0 && dot < member.length - 1)
          entries.push({ handle: member.slice(0, dot), key: member.slice(dot + 1) })
      }
      return entries
    },

    async getMany(keys, { signal }) {
      if (keys.length === 0) return []
      // Cluster without hash tag: the records are on several nodes, read side by side.
      if (spread) return Promise.all(keys.map((key) => hgetall(key, signal)))
      const reply = await run(
        SCRIPTS.getMany,
        keys.map((key) => prefix + key),
        [],
        signal,
        false,
      )
      if (!Array.isArray(reply) || reply.length !== keys.length) throw unexpected('read', reply)
      return reply.map(decodeRecord)
    },

    async revokeUser(user, keys, { signal }) {
      if (keys.length === 0) return 0
      if (spread) {
        const owner = checkName(user, 'user key')
        const replies = await Promise.all(
          keys.map((key) => run(SCRIPTS.revokeRecord, [prefix + key], [owner], signal)),
        )
        return replies.reduce<number>((sum, reply) => sum + countOf('revoke', reply), 0)
      }
      const roles = new Keys().add('i', indexOf(user)).add('l', liveSet).add('u', usersSet)
      const records = keys.map((key) => prefix + key)
      const reply = await run(
        SCRIPTS.revoke,
        [...roles.keys, ...records],
        [roles.roles, user, ...keys],
        signal,
      )
      return countOf('revoke', reply)
    },

    async countUsers({ signal }) {
      return countOf('count users', await run(SCRIPTS.countUsers, [usersSet], [], signal, false))
    },
  }
  // No live set nor users set, nothing to count: `count()` and `countUsers()` reject with ERR_UNSUPPORTED.
  if (spread) {
    delete store.count
    delete store.countUsers
  }
  return store
}

/**
 * True when every key `prefix + X` (X base64url, `#live`, `users` or `u:` + base64url: no braces) hashes to one
 * Redis Cluster slot: the prefix holds the key's hash tag, a non-empty `{...}` after its first `{` (Redis hashes
 * only that part then).
 */
export function pinsSlot(prefix: string): boolean {
  const open = prefix.indexOf('{')
  return open >= 0 && prefix.indexOf('}', open + 1) > open + 1
}

/**
 * A session's member in its user's index, `<handle>.<hashed key>`, or '' without an entry. Handles and user keys
 * come from the sessions layer, base64url: checked anyway, since a dot or a brace would change what they name.
 */
function memberOf(entry: UserEntry | undefined, key: string): string {
  return entry ? `${checkName(entry.handle, 'handle')}.${key}` : ''
}

function checkName(value: string, what: string): string {
  if (typeof value !== 'string' || !/^[\w-]+$/.test(value)) throw new TypeError(`a ${what} must be base64url`)
  return value
}

/** A count a script answered: a whole number of at least 0. */
function countOf(what: string, reply: unknown): number {
  if (typeof reply !== 'number' || !Number.isSafeInteger(reply) || reply < 0) throw unexpected(what, reply)
  return reply
}

/** PEXPIRE takes whole milliseconds; a fraction is rounded up, so a record lives at least as long as asked. */
function ttlArg(ttl: number): string {
  if (!(ttl > 0) || !Number.isFinite(ttl))
    throw new RangeError(`a TTL must be a positive number of ms, got ${ttl}`)
  return String(Math.ceil(ttl))
}

/**
 * The patch script's twin for `returnRecord`: 0 when the record was missing, else its HGETALL after the write,
 * decoded as `get` decodes it. A hash this store cannot decode (a foreign field) was written all the same: true.
 */
function writtenRecord(reply: unknown): WriteAnswer {
  if (reply === 0) return false
  if (!Array.isArray(reply) || reply.length === 0) throw unexpected('write', reply)
  return decodeRecord(reply) ?? true
}

/** The 1 or 0 of the write scripts; anything else (a client that swallowed an abort, say) is a failure. */
function written(reply: unknown): boolean {
  if (reply === 1) return true
  if (reply === 0) return false
  throw unexpected('write', reply)
}
