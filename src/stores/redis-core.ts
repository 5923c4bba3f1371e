/** @module @internal The Redis stores' shared core: layout, Lua scripts, EVALSHA, error cleaning (docs/redis.md). */

import type {
  RecordPatch,
  ServerStore,
  SessionData,
  SessionMeta,
  SessionRecord,
  SessionTimes,
  StoreContext,
  UserEntry,
} from '../store.ts'
import { storeConfigError, storedUser } from './shared.ts'

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

/*
 * Layout (docs/redis.md). A session is one hash under `prefix + key`:
 *   d:<data key>   one field per data key
 *   f:<data key>   one field per flash marker (value j1), so a patch sets and clears markers with HSET/HDEL
 *   m:createdAt, m:lastSeenAt, m:expiresAt   the times
 *   m:handle, m:user   the session's handle and its user (id, key, agent, label), when it has them
 * and its TTL (PEXPIRE) follows the nearer deadline. Records written before markers had a field each keep them
 * as one JSON list in m:flash: read as markers, and turned into f: fields by the next patch.
 *
 * Every value is `j` + its JSON: never valid JSON nor a number, so a client that parses replies
 * (@upstash/redis's automaticDeserialization) hands it back untouched.
 *
 * Sorted sets, each scored by deadlines on Redis's clock (a member lapses when its record's key expires):
 *   prefix + '#live'          member the hashed key of every live session: `count`
 *   prefix + 'u:' + user key  one per user, named by the user's key (a hash: no user id in a key name), member
 *                             `<handle>.<hashed key>` per session bound to that user; its TTL is its latest member's
 *   prefix + 'users'          member each user's key, score that user's latest deadline: `countUsers`
 * None can be a session key ('#' and ':' are not base64url; 'users' is shorter than a hashed key). On a Cluster
 * whose prefix pins no slot, the record and the sets are on different nodes: there is no live set nor users set,
 * and a user's entry is written by a script of its own beside the record's (docs/redis.md, "Cluster").
 */
const DATA = 'd:'
const FLASH = 'f:'
const META = 'm:'
const CREATED_AT = 'm:createdAt'
const LAST_SEEN_AT = 'm:lastSeenAt'
const EXPIRES_AT = 'm:expiresAt'
const HANDLE = 'm:handle'
const USER = 'm:user'
const LEGACY_FLASH = 'm:flash'
const MARKED = 'j1'
const ENCODING = 'j'
/** The sorted set of live sessions, after the prefix. */
export const LIVE_SET = '#live'
/** A user's index, after the prefix: then the user's key. */
export const USER_INDEX = 'u:'
/** The sorted set of users with a live session, after the prefix. */
export const USERS_SET = 'users'

/*
 * Redis does not roll a script back when a command in it fails: the commands before stay applied. So each
 * script checks first that its keys hold what it will write (`check`, raising WRONGTYPE before any write), and
 * after that runs only commands that cannot fail (out of memory, Redis refuses a script's first write, never a
 * later one). A write is then applied whole or not at all. The error names the key's role, never the key.
 */
const LUA_CHECK = `
local function check(key, wanted, role)
  if not key then return end
  local held = redis.call('TYPE', key)['ok']
  if held ~= wanted and held ~= 'none' then
    error({err = 'WRONGTYPE the ' .. role .. ' holds a ' .. held .. ', not a ' .. wanted})
  end
end
`

/** Milliseconds on Redis's own clock (TIME): the clock PEXPIRE counts on. */
const LUA_CLOCK = `
local function ms(n) return string.format('%.0f', n) end
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

/*
 * The write scripts' common part. ARGV[1] names the role of each key of KEYS, one letter each, in order: r the
 * record, l the live set, o the record a regenerate replaces, i the user index of the record's user, j that of
 * the replaced record's user, u the users set. A role the call has no key for is absent (K.x is nil), and its
 * work skipped: anonymous sessions, and the Cluster without hash tag (docs/redis.md).
 *
 * Scores are deadlines on Redis's clock plus the TTL. Writing after TIME needs script effects replication, the
 * default since Redis 5.0. `hcall` sends ARGV in slices: `unpack` is bounded by Lua's C stack (LUAI_MAXCSTACK,
 * 8000); the slice length is even so that HSET slices keep field/value pairs whole.
 */
const LUA_WRITE = `${LUA_CHECK}${LUA_CLOCK}
local K = {}
for i = 1, #ARGV[1] do K[string.sub(ARGV[1], i, i)] = KEYS[i] end
local function hcall(command, key, first, last)
  for i = first, last, 4000 do
    redis.call(command, key, unpack(ARGV, i, math.min(i + 3999, last)))
  end
end
local function track(live, member, ttl, now)
  if not live then return end
  redis.call('ZREMRANGEBYSCORE', live, '-inf', '(' .. ms(now))
  redis.call('ZADD', live, ms(now + ttl), member)
  if redis.call('PTTL', live) < ttl then redis.call('PEXPIRE', live, ttl) end
end
local function fit(set, now)
  local top = redis.call('ZRANGE', set, '-1', '-1', 'WITHSCORES')
  local latest = tonumber(top[2] or '0')
  if latest > now then redis.call('PEXPIRE', set, ms(latest - now)) else redis.call('DEL', set) end
  return latest
end
local function settle(index, users, user, now)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. ms(now))
  local latest = fit(index, now)
  if not users then return end
  if latest > now then redis.call('ZADD', users, ms(latest), user) else redis.call('ZREM', users, user) end
  redis.call('ZREMRANGEBYSCORE', users, '-inf', '(' .. ms(now))
  fit(users, now)
end
`
// `fit`: a sorted set's TTL becomes its latest score's deadline (deleted when none is ahead), so it dies with its
// last member. `settle`: after a change to a user's index, its lapsed entries go, and the index and the user's
// score in the users set follow its latest entry (the user leaves the set with its last session).

/*
 * set: ARGV roles, ttl, key, entry member, user key, replaced key, replaced member, replaced user key, then
 * field/value pairs. With a replaced record (regenerate) nothing is written unless it still exists: a concurrent
 * destroy stands. A retry of a request whose reply was lost (@upstash/redis retries even with `retry: false`)
 * finds the old record gone because this very script ran. The new key is a fresh random id no one else writes,
 * so if it exists the write landed: answer 1 again rather than end the session it created. The replaced
 * record's entry leaves its index (another user's at a login as someone else) and the new one enters its own.
 */
const SET_SCRIPT = `${LUA_WRITE}
check(K.l, 'zset', 'live-session set')
check(K.i, 'zset', 'user index')
check(K.j, 'zset', 'user index')
check(K.u, 'zset', 'users set')
local ttl = tonumber(ARGV[2])
if K.o then
  if redis.call('EXISTS', K.o) == 0 then return redis.call('EXISTS', K.r) end
  redis.call('DEL', K.o)
  if K.l then redis.call('ZREM', K.l, ARGV[6]) end
end
local now = clock()
if K.j then
  redis.call('ZREM', K.j, ARGV[7])
  if K.j ~= K.i then settle(K.j, K.u, ARGV[8], now) end
end
redis.call('DEL', K.r)
hcall('HSET', K.r, 9, #ARGV)
redis.call('PEXPIRE', K.r, ttl)
track(K.l, ARGV[3], ttl, now)
if K.i then
  redis.call('ZADD', K.i, ms(now + ttl), ARGV[4])
  settle(K.i, K.u, ARGV[5], now)
end
return 1
`

/*
 * patch and touch: ARGV roles, ttl, key, entry member, user key, number of pairs n, n field/value pairs, fields
 * to delete. A missing record is not recreated (HSET alone would), nor is its entry: REST has no WATCH, so the
 * check runs in here. A legacy m:flash list becomes f: fields first, so the patch's HDEL/HSET of markers apply
 * to it as well. The entry's score follows the record's new deadline.
 */
const PATCH_SCRIPT = `${LUA_WRITE}
check(K.r, 'hash', 'session record')
check(K.l, 'zset', 'live-session set')
check(K.i, 'zset', 'user index')
check(K.u, 'zset', 'users set')
local now = clock()
if redis.call('EXISTS', K.r) == 0 then
  if K.l then redis.call('ZREM', K.l, ARGV[3]) end
  if K.i then
    redis.call('ZREM', K.i, ARGV[4])
    settle(K.i, K.u, ARGV[5], now)
  end
  return 0
end
local legacy = redis.call('HGET', K.r, '${LEGACY_FLASH}')
if legacy then
  local ok, marked = pcall(cjson.decode, string.sub(legacy, 2))
  if ok and type(marked) == 'table' then
    for _, key in ipairs(marked) do
      if type(key) == 'string' then redis.call('HSET', K.r, '${FLASH}' .. key, '${MARKED}') end
    end
    redis.call('HDEL', K.r, '${LEGACY_FLASH}')
  end
end
local ttl = tonumber(ARGV[2])
local last = 6 + 2 * tonumber(ARGV[6])
hcall('HDEL', K.r, last + 1, #ARGV)
hcall('HSET', K.r, 7, last)
redis.call('PEXPIRE', K.r, ttl)
track(K.l, ARGV[3], ttl, now)
if K.i then
  redis.call('ZADD', K.i, ms(now + ttl), ARGV[4])
  settle(K.i, K.u, ARGV[5], now)
end
return 1
`

/** delete: ARGV roles, (unused), key, entry member, user key. */
const DELETE_SCRIPT = `${LUA_WRITE}
check(K.l, 'zset', 'live-session set')
check(K.i, 'zset', 'user index')
check(K.u, 'zset', 'users set')
redis.call('DEL', K.r)
if K.l then redis.call('ZREM', K.l, ARGV[3]) end
if K.i then
  redis.call('ZREM', K.i, ARGV[4])
  settle(K.i, K.u, ARGV[5], clock())
end
return 1
`

/*
 * revokeUser: KEYS the role keys (i, and l and u), then the records; ARGV roles, user key, then the records'
 * hashed keys. Only records whose key is in the user's index are deleted, with their entries and live-set
 * members: a key of another user's session is left alone. Answers how many records were deleted.
 */
const REVOKE_SCRIPT = `${LUA_WRITE}
check(K.i, 'zset', 'user index')
check(K.l, 'zset', 'live-session set')
check(K.u, 'zset', 'users set')
local now = clock()
local named = {}
for _, member in ipairs(redis.call('ZRANGE', K.i, '0', '-1')) do
  local dot = string.find(member, '.', 1, true)
  if dot then named[string.sub(member, dot + 1)] = member end
end
local offset = #ARGV[1] - 2
local revoked = 0
for i = 3, #ARGV do
  local member = named[ARGV[i]]
  if member then
    revoked = revoked + redis.call('DEL', KEYS[offset + i])
    redis.call('ZREM', K.i, member)
    if K.l then redis.call('ZREM', K.l, ARGV[i]) end
  end
end
settle(K.i, K.u, ARGV[2], now)
return revoked
`

/*
 * A Cluster whose prefix pins no slot: a user's entry on its own, written beside its record's script (set,
 * patch, touch). ARGV as the patch script's first five. The score only rises: this script and the record's run
 * side by side, and a lower score could make the entry lapse before its record.
 */
const ENTRY_SCRIPT = `${LUA_WRITE}
check(K.i, 'zset', 'user index')
local now = clock()
local score = now + tonumber(ARGV[2])
local held = redis.call('ZSCORE', K.i, ARGV[4])
if not held or tonumber(held) < score then redis.call('ZADD', K.i, ms(score), ARGV[4]) end
settle(K.i, nil, nil, now)
return 1
`

/*
 * The same Cluster, revokeUser, one script per record (each on its node): deleted only when the record is bound
 * to that user (its m:user names the user's key). Answers 1 when it deleted the record.
 */
const REVOKE_RECORD_SCRIPT = `
local stored = redis.call('HGET', KEYS[1], '${USER}')
if not stored then return 0 end
local ok, user = pcall(cjson.decode, string.sub(stored, 2))
if ok and type(user) == 'table' and user.key == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`

/*
 * A regenerate on a Cluster whose prefix pins no slot, in two steps. First the new record: the set script with
 * KEYS record alone, answering 2 when the key was already there (a retry of a write that landed), else 1. Then
 * the old record: DEL, 1 if it was there.
 */
const SET_NEW_SCRIPT = `local existed = redis.call('EXISTS', KEYS[1])
local function set()
${SET_SCRIPT}
end
set()
return 1 + existed
`
const TAKE_SCRIPT = `return redis.call('DEL', KEYS[1])`

/*
 * count: KEYS live set. Prunes the members past their deadline (Redis's clock, as above), then counts those
 * ahead. The pruning is housekeeping, by `pcall`: a Redis that refuses writes (NOREPLICAS) still answers.
 */
const COUNT_SCRIPT = `${LUA_CLOCK}
local now = ms(clock())
redis.pcall('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
return redis.call('ZCOUNT', KEYS[1], now, '+inf')
`

/** userEntries: KEYS a user index. Prunes the lapsed entries (by `pcall`, as count), then lists the others. */
const ENTRIES_SCRIPT = `${LUA_CLOCK}
local now = ms(clock())
redis.pcall('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
return redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
`

/** getMany: KEYS records. Each one's HGETALL, in order (an empty list for a missing one). */
const GET_MANY_SCRIPT = `
local records = {}
for i, key in ipairs(KEYS) do records[i] = redis.call('HGETALL', key) end
return records
`

/** countUsers: KEYS the users set. Users whose latest deadline is ahead, read only. */
const COUNT_USERS_SCRIPT = `${LUA_CLOCK}
return redis.call('ZCOUNT', KEYS[1], ms(clock()), '+inf')
`

/** A script's text and, once computed, its SHA-1 (the name EVALSHA calls it by). */
class LuaScript {
  readonly text: string
  #sha1: Promise<string> | undefined

  constructor(text: string) {
    this.text = text
  }

  /** Computed on first use: importing the module does no work (the package declares no side effects). */
  sha1(): Promise<string> {
    this.#sha1 ??= crypto.subtle.digest('SHA-1', new TextEncoder().encode(this.text)).then(hex)
    return this.#sha1
  }
}

const SCRIPTS = {
  set: new LuaScript(SET_SCRIPT),
  patch: new LuaScript(PATCH_SCRIPT),
  delete: new LuaScript(DELETE_SCRIPT),
  revoke: new LuaScript(REVOKE_SCRIPT),
  entry: new LuaScript(ENTRY_SCRIPT),
  revokeRecord: new LuaScript(REVOKE_RECORD_SCRIPT),
  setNew: new LuaScript(SET_NEW_SCRIPT),
  take: new LuaScript(TAKE_SCRIPT),
  count: new LuaScript(COUNT_SCRIPT),
  entries: new LuaScript(ENTRIES_SCRIPT),
  getMany: new LuaScript(GET_MANY_SCRIPT),
  countUsers: new LuaScript(COUNT_USERS_SCRIPT),
}

/** A script's KEYS, each with its role letter (see LUA_WRITE): the roles go first in ARGV. */
class Keys {
  roles = ''
  readonly keys: string[] = []

  add(role: string, key: string): this {
    this.roles += role
    this.keys.push(key)
    return this
  }
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

  /** The patch script (patch and touch): `body` is its ARGV after the first five. */
  async function update(
    key: string,
    ttl: number,
    body: string[],
    { signal, user }: StoreContext,
  ): Promise<boolean> {
    const ttlText = ttlArg(ttl)
    if (!spread) {
      const keys = new Keys().add('r', prefix + key).add('l', liveSet)
      if (user) keys.add('i', indexOf(user.user)).add('u', usersSet)
      const args = [keys.roles, ttlText, key, memberOf(user, key), user?.user ?? '', ...body]
      return written(await run(SCRIPTS.patch, keys.keys, args, signal))
    }
    const patched = run(SCRIPTS.patch, [prefix + key], ['r', ttlText, key, '', '', ...body], signal)
    if (!user) return written(await patched)
    const [reply] = await Promise.all([patched, addEntry(user, key, ttlText, signal)])
    return written(reply)
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
      const pairs: string[] = []
      const deleted: string[] = []
      const flash = new Set(patch.flash)
      for (const field of Object.keys(patch.set)) {
        pairs.push(DATA + field, encodeValue(patch.set[field]))
        if (flash.has(field)) pairs.push(FLASH + field, MARKED)
        else deleted.push(FLASH + field)
      }
      for (const field of patch.delete) deleted.push(DATA + field, FLASH + field)
      pairs.push(...timeFields(patch.meta))
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

/** Encodes one value: see the layout note above. */
export function encodeValue(value: unknown): string {
  const json = JSON.stringify(value)
  if (json === undefined) throw new TypeError('a session value must be JSON data')
  return ENCODING + json
}

/** The value `encodeValue` made, or undefined when `stored` is not one. */
export function decodeValue(stored: unknown): unknown {
  if (typeof stored !== 'string' || !stored.startsWith(ENCODING)) return undefined
  try {
    return JSON.parse(stored.slice(ENCODING.length))
  } catch {
    return undefined
  }
}

/**
 * The record in an HGETALL reply, or null when there is none, or when the hash is not a whole record this store
 * wrote (a value it cannot decode, missing times): such a hash cannot be trusted, and the sessions layer then
 * starts a fresh session. A reply of the wrong shape is the client's failure, and throws. The data object has a
 * null prototype, so every string key (`__proto__` included) is a plain own key.
 */
export function decodeRecord(reply: unknown): SessionRecord | null {
  const data: SessionData = Object.create(null)
  const marked = new Set<string>()
  const metadata = new Map<string, unknown>()
  for (const [field, stored] of hashEntries(reply)) {
    if (field.startsWith(FLASH)) {
      marked.add(field.slice(FLASH.length))
      continue
    }
    const isData = field.startsWith(DATA)
    if (!isData && !field.startsWith(META)) continue
    const value = decodeValue(stored)
    if (value === undefined) return null
    if (isData) data[field.slice(DATA.length)] = value
    else metadata.set(field, value)
  }
  const createdAt = metadata.get(CREATED_AT)
  const lastSeenAt = metadata.get(LAST_SEEN_AT)
  const expiresAt = metadata.get(EXPIRES_AT)
  if (!isTime(createdAt) || !isTime(lastSeenAt) || !isTime(expiresAt)) return null
  const legacy = metadata.get(LEGACY_FLASH)
  if (legacy !== undefined) {
    if (!Array.isArray(legacy) || !legacy.every((key) => typeof key === 'string')) return null
    for (const key of legacy) marked.add(key)
  }
  // A marker counts only beside its value (a patch clears both together; this is a guard, not a path).
  const flash = [...marked].filter((key) => Object.hasOwn(data, key))
  const meta: SessionMeta = { createdAt, lastSeenAt, expiresAt }
  if (flash.length > 0) meta.flash = flash
  // Absent in records written before sessions per user, and in anonymous ones.
  const handle = metadata.get(HANDLE)
  if (handle !== undefined) {
    if (typeof handle !== 'string') return null
    meta.handle = handle
  }
  const user = metadata.get(USER)
  if (user !== undefined) {
    const checked = storedUser(user)
    if (checked === null) return null
    meta.user = checked
  }
  return { data, meta }
}

function hashEntries(reply: unknown): [string, unknown][] {
  if (reply === null) return []
  if (Array.isArray(reply)) {
    if (reply.length % 2 !== 0) throw unexpected('HGETALL', reply)
    const entries: [string, unknown][] = []
    for (let i = 0; i < reply.length; i += 2) {
      const field = reply[i]
      if (typeof field !== 'string') throw unexpected('HGETALL', reply)
      entries.push([field, reply[i + 1]])
    }
    return entries
  }
  if (typeof reply === 'object') return Object.entries(reply)
  throw unexpected('HGETALL', reply)
}

/** A whole record's fields: data, a marker per flash key, times, handle and user. */
function recordFields({ data, meta }: SessionRecord): string[] {
  const fields: string[] = []
  for (const key of Object.keys(data)) fields.push(DATA + key, encodeValue(data[key]))
  for (const key of meta.flash ?? []) if (Object.hasOwn(data, key)) fields.push(FLASH + key, MARKED)
  fields.push(...timeFields(meta))
  if (meta.handle !== undefined) fields.push(HANDLE, encodeValue(meta.handle))
  if (meta.user) {
    const { id, key, agent, label } = meta.user
    fields.push(USER, encodeValue({ id, key, agent, label }))
  }
  return fields
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

function timeFields(times: SessionTimes): string[] {
  return [
    CREATED_AT,
    encodeValue(times.createdAt),
    LAST_SEEN_AT,
    encodeValue(times.lastSeenAt),
    EXPIRES_AT,
    encodeValue(times.expiresAt),
  ]
}

function isTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value)
}

/** PEXPIRE takes whole milliseconds; a fraction is rounded up, so a record lives at least as long as asked. */
function ttlArg(ttl: number): string {
  if (!(ttl > 0) || !Number.isFinite(ttl))
    throw new RangeError(`a TTL must be a positive number of ms, got ${ttl}`)
  return String(Math.ceil(ttl))
}

/** The 1 or 0 of the write scripts; anything else (a client that swallowed an abort, say) is a failure. */
function written(reply: unknown): boolean {
  if (reply === 1) return true
  if (reply === 0) return false
  throw unexpected('write', reply)
}

/** Names the reply's kind only: a malformed reply may hold session values. */
function unexpected(what: string, reply: unknown): Error {
  const kind = reply === null ? 'null' : Array.isArray(reply) ? 'an array' : `a ${typeof reply}`
  return new TypeError(`unexpected ${what} reply from Redis: ${kind}`)
}

function hex(digest: ArrayBuffer): string {
  let text = ''
  for (const byte of new Uint8Array(digest)) text += byte.toString(16).padStart(2, '0')
  return text
}

/*
 * Errors. Clients put the command into their errors: @upstash/redis appends the request body (", command was:
 * [...]": the script, the keys, the values), ioredis hangs it on the error (`command.args`), Redis itself echoes
 * an unknown command's arguments, and a reply that does not parse is quoted. None of that may reach a
 * SessionError, its message or its cause. So the store throws a new error instead: the client's error class
 * (`name`), its message cut before any of those echoes, every argument sent scrubbed from what is left, its
 * `code` (ECONNREFUSED...), and its cause cleaned the same way. Nothing else of the original is kept.
 */
const ECHOES = ['command was:', 'with args beginning with', 'response body:']
/** Shorter arguments (a TTL, `j1`) are not scrubbed: they would mangle words and name nothing. */
const SCRUBBED_LENGTH = 6
const MAX_MESSAGE = 300
const MAX_CAUSES = 4

/** True for Redis's answer to EVALSHA of a script it does not hold (looked for in the message, echoes cut). */
export function isNoScript(error: unknown): boolean {
  return error instanceof Error && /\bNOSCRIPT\b/.test(cutEchoes(error.message))
}

/** `error` as a new error carrying none of `sent` and no command: see the note above. */
export function cleanError(error: unknown, sent: readonly string[], depth = 0): Error {
  const original = error instanceof Error ? error : undefined
  const message = scrub(cutEchoes(original ? original.message : String(error)), sent)
  const cause =
    original?.cause !== undefined && depth < MAX_CAUSES
      ? cleanError(original.cause, sent, depth + 1)
      : undefined
  const clean = new Error(message, cause === undefined ? undefined : { cause })
  if (original && typeof original.name === 'string' && original.name !== 'Error') {
    clean.name = scrub(original.name, sent).slice(0, 60)
  }
  const code = (original as { code?: unknown } | undefined)?.code
  if ((typeof code === 'string' && /^[\w.-]{1,40}$/.test(code)) || typeof code === 'number') {
    Object.defineProperty(clean, 'code', { value: code, enumerable: true })
  }
  return clean
}

function cutEchoes(message: string): string {
  let text = message
  for (const echo of ECHOES) {
    const at = text.indexOf(echo)
    if (at >= 0) text = `${text.slice(0, at).replace(/[\s,:;]+$/, '')} [...]`
  }
  return text
}

function scrub(text: string, sent: readonly string[]): string {
  let clean = text
  for (const arg of sent) {
    if (arg.length >= SCRUBBED_LENGTH && clean.includes(arg)) clean = clean.split(arg).join('[...]')
  }
  return clean.length > MAX_MESSAGE ? `${clean.slice(0, MAX_MESSAGE)}...` : clean
}
