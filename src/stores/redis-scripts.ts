/** @module @internal The Redis stores' key layout and Lua scripts, each run by its SHA-1 (docs/redis.md). */

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
export const DATA = 'd:'
export const FLASH = 'f:'
export const META = 'm:'
export const CREATED_AT = 'm:createdAt'
export const LAST_SEEN_AT = 'm:lastSeenAt'
export const EXPIRES_AT = 'm:expiresAt'
export const HANDLE = 'm:handle'
export const USER = 'm:user'
export const LEGACY_FLASH = 'm:flash'
export const MARKED = 'j1'
export const ENCODING = 'j'
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
 * to it as well. The entry's score follows the record's new deadline. Answers 0 when missing, else `answer`:
 * 1, or (for `ctx.returnRecord`) the record's HGETALL after the write, in the same atomic step.
 */
const patchScript = (answer: string) => `${LUA_WRITE}
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
return ${answer}
`
const PATCH_SCRIPT = patchScript('1')
const PATCH_RECORD_SCRIPT = patchScript("redis.call('HGETALL', K.r)")

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
export class LuaScript {
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

export const SCRIPTS = {
  set: new LuaScript(SET_SCRIPT),
  patch: new LuaScript(PATCH_SCRIPT),
  patchRecord: new LuaScript(PATCH_RECORD_SCRIPT),
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
export class Keys {
  roles = ''
  readonly keys: string[] = []

  add(role: string, key: string): this {
    this.roles += role
    this.keys.push(key)
    return this
  }
}

function hex(digest: ArrayBuffer): string {
  let text = ''
  for (const byte of new Uint8Array(digest)) text += byte.toString(16).padStart(2, '0')
  return text
}
