/** @module @internal The Redis stores' shared core: layout, Lua scripts, EVALSHA, error cleaning (docs/redis.md). */

import type {
  RecordPatch,
  ServerStore,
  SessionData,
  SessionMeta,
  SessionRecord,
  SessionTimes,
} from '../store.ts'
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
   * `count`) and regenerates in two steps, new record first (docs/redis.md, "Cluster").
   */
  cluster?: boolean
}

/*
 * Layout (docs/redis.md). A session is one hash under `prefix + key`:
 *   d:<data key>   one field per data key
 *   f:<data key>   one field per flash marker (value j1), so a patch sets and clears markers with HSET/HDEL
 *   m:createdAt, m:lastSeenAt, m:expiresAt   the times
 * and its TTL (PEXPIRE) follows the nearer deadline. Records written before markers had a field each keep them
 * as one JSON list in m:flash: read as markers, and turned into f: fields by the next patch.
 *
 * Every value is `j` + its JSON: never valid JSON nor a number, so a client that parses replies
 * (@upstash/redis's automaticDeserialization) hands it back untouched.
 *
 * Live sessions are counted in a sorted set under `prefix + '#live'` ('#' is not base64url, so it cannot be a
 * session key), member = the hashed key, score = the deadline of the record's TTL on Redis's clock. On a Cluster
 * whose prefix pins no slot there is none: the scripts get no KEYS[2], and `check`, `track` and ZREM skip it.
 */
const DATA = 'd:'
const FLASH = 'f:'
const META = 'm:'
const CREATED_AT = 'm:createdAt'
const LAST_SEEN_AT = 'm:lastSeenAt'
const EXPIRES_AT = 'm:expiresAt'
const LEGACY_FLASH = 'm:flash'
const MARKED = 'j1'
const ENCODING = 'j'
/** The sorted set of live sessions, after the prefix. */
export const LIVE_SET = '#live'

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

/*
 * Scores are deadlines on Redis's own clock (TIME) plus the TTL: the clock PEXPIRE counts on, so a member lapses
 * when its key expires. Writing after TIME needs script effects replication, the default since Redis 5.0.
 * `hcall` sends ARGV in slices: `unpack` is bounded by Lua's C stack (LUAI_MAXCSTACK, 8000); the slice length is
 * even so that HSET slices keep field/value pairs whole.
 */
const LUA_WRITE = `${LUA_CHECK}
local function hcall(command, key, first, last)
  for i = first, last, 4000 do
    redis.call(command, key, unpack(ARGV, i, math.min(i + 3999, last)))
  end
end
local function track(live, member, ttl)
  if not live then return end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', live, '-inf', '(' .. string.format('%.0f', now))
  redis.call('ZADD', live, string.format('%.0f', now + ttl), member)
  if redis.call('PTTL', live) < ttl then redis.call('PEXPIRE', live, ttl) end
end
`

/*
 * set: KEYS record, live set[, replaced record]; ARGV ttl, member, replaced member (or ''), field/value pairs.
 * With a replaced record (regenerate) nothing is written unless it still exists: a concurrent destroy stands.
 * A retry of a request whose reply was lost (@upstash/redis retries even with `retry: false`) finds the old
 * record gone because this very script ran. The new key is a fresh random id no one else writes, so if it
 * exists the write landed: answer 1 again rather than end the session it created.
 */
const SET_SCRIPT = `${LUA_WRITE}
check(KEYS[2], 'zset', 'live-session set')
local ttl = tonumber(ARGV[1])
if KEYS[3] then
  if redis.call('EXISTS', KEYS[3]) == 0 then return redis.call('EXISTS', KEYS[1]) end
  redis.call('DEL', KEYS[3])
  redis.call('ZREM', KEYS[2], ARGV[3])
end
redis.call('DEL', KEYS[1])
hcall('HSET', KEYS[1], 4, #ARGV)
redis.call('PEXPIRE', KEYS[1], ttl)
track(KEYS[2], ARGV[2], ttl)
return 1
`

/*
 * patch and touch: KEYS record, live set; ARGV ttl, member, number of pairs n, n field/value pairs, fields to
 * delete. A missing record is not recreated (HSET alone would): REST has no WATCH, so the check runs in here.
 * A legacy m:flash list becomes f: fields first, so the patch's HDEL/HSET of markers apply to it as well.
 */
const PATCH_SCRIPT = `${LUA_WRITE}
check(KEYS[1], 'hash', 'session record')
check(KEYS[2], 'zset', 'live-session set')
if redis.call('EXISTS', KEYS[1]) == 0 then
  if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[2]) end
  return 0
end
local legacy = redis.call('HGET', KEYS[1], '${LEGACY_FLASH}')
if legacy then
  local ok, marked = pcall(cjson.decode, string.sub(legacy, 2))
  if ok and type(marked) == 'table' then
    for _, key in ipairs(marked) do
      if type(key) == 'string' then redis.call('HSET', KEYS[1], '${FLASH}' .. key, '${MARKED}') end
    end
    redis.call('HDEL', KEYS[1], '${LEGACY_FLASH}')
  end
end
local ttl = tonumber(ARGV[1])
local last = 3 + 2 * tonumber(ARGV[3])
hcall('HDEL', KEYS[1], last + 1, #ARGV)
hcall('HSET', KEYS[1], 4, last)
redis.call('PEXPIRE', KEYS[1], ttl)
track(KEYS[2], ARGV[2], ttl)
return 1
`

/** delete: KEYS record, live set; ARGV member. */
const DELETE_SCRIPT = `${LUA_CHECK}
check(KEYS[2], 'zset', 'live-session set')
redis.call('DEL', KEYS[1])
if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[1]) end
return 1
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

/** count: KEYS live set. Prunes the members past their deadline (Redis's clock, as above), then counts. */
const COUNT_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', now))
return redis.call('ZCARD', KEYS[1])
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
  setNew: new LuaScript(SET_NEW_SCRIPT),
  take: new LuaScript(TAKE_SCRIPT),
  count: new LuaScript(COUNT_SCRIPT),
}

/**
 * A {@link ServerStore} over Redis hashes, for any client that can run HGETALL, EVAL and EVALSHA. Every call is
 * one round trip (but a regenerate on a Cluster without hash tag: two); writes run as one Lua script each, so
 * each is atomic and none is ever half-applied.
 */
export function createRedisStore({ name, prefix, commands, cluster }: RedisStoreOptions): ServerStore {
  if (typeof prefix !== 'string') {
    throw storeConfigError(`${name}Store`, `prefix must be a string, got ${typeof prefix}`)
  }
  // Without the live set, the scripts find no KEYS[2] and skip their index work (see the Lua above).
  const spread = cluster === true && !pinsSlot(prefix)
  const live = spread ? [] : [prefix + LIVE_SET]
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

  const store: ServerStore = {
    kind: 'server',
    name,

    async get(key, { signal }) {
      signal.throwIfAborted()
      const full = prefix + key
      let reply: unknown
      try {
        reply = await commands.hgetall(full, signal)
      } catch (error) {
        throw cleanError(error, [full, key])
      }
      return decodeRecord(reply)
    },

    async set(key, record, ttl, { signal }, replaces) {
      const keys = [prefix + key, ...live]
      if (replaces !== undefined && !spread) keys.push(prefix + replaces)
      const args = [ttlArg(ttl), key, replaces ?? '', ...recordFields(record)]
      if (replaces === undefined || !spread) return written(await run(SCRIPTS.set, keys, args, signal))
      // Cluster, two slots, two steps: the new record first, so a failure leaves the old one as it was (the new
      // one, whose id nobody has received, lapses with its TTL). Then the old one is taken; when it was gone
      // already and this is no retry of a write that landed, a concurrent destroy (or expiry) got there first:
      // the new record is deleted again, as the one-slot script would not have written it.
      const created = await run(SCRIPTS.setNew, keys, args, signal)
      if (created !== 1 && created !== 2) throw unexpected('write', created)
      const took = written(await run(SCRIPTS.take, [prefix + replaces], [], signal))
      if (took || created === 2) return true
      await run(SCRIPTS.delete, keys, [key], signal)
      return false
    },

    async patch(key, patch: RecordPatch, ttl, { signal }) {
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
      const args = [ttlArg(ttl), key, String(pairs.length / 2), ...pairs, ...deleted]
      return written(await run(SCRIPTS.patch, [prefix + key, ...live], args, signal))
    },

    // The times and the TTL only: no data field nor marker is sent, so a touch cannot undo a concurrent write.
    async touch(key, times, ttl, { signal }) {
      const pairs = timeFields(times)
      const args = [ttlArg(ttl), key, String(pairs.length / 2), ...pairs]
      return written(await run(SCRIPTS.patch, [prefix + key, ...live], args, signal))
    },

    async delete(key, { signal }) {
      await run(SCRIPTS.delete, [prefix + key, ...live], [key], signal)
    },

    async count({ signal }) {
      const reply = await run(SCRIPTS.count, live, [], signal, false)
      if (typeof reply !== 'number' || !Number.isSafeInteger(reply) || reply < 0)
        throw unexpected('count', reply)
      return reply
    },
  }
  // No live set, nothing to count: `sessions.count()` rejects with ERR_UNSUPPORTED.
  if (spread) delete store.count
  return store
}

/**
 * True when every key `prefix + X` (X base64url or `#live`: no braces) hashes to one Redis Cluster slot: the
 * prefix holds the key's hash tag, a non-empty `{...}` after its first `{` (Redis hashes only that part then).
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
  const times = new Map<string, unknown>()
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
    else times.set(field, value)
  }
  const createdAt = times.get(CREATED_AT)
  const lastSeenAt = times.get(LAST_SEEN_AT)
  const expiresAt = times.get(EXPIRES_AT)
  if (!isTime(createdAt) || !isTime(lastSeenAt) || !isTime(expiresAt)) return null
  const legacy = times.get(LEGACY_FLASH)
  if (legacy !== undefined) {
    if (!Array.isArray(legacy) || !legacy.every((key) => typeof key === 'string')) return null
    for (const key of legacy) marked.add(key)
  }
  // A marker counts only beside its value (a patch clears both together; this is a guard, not a path).
  const flash = [...marked].filter((key) => Object.hasOwn(data, key))
  const meta: SessionMeta = { createdAt, lastSeenAt, expiresAt }
  if (flash.length > 0) meta.flash = flash
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

/** A whole record's fields: data, a marker per flash key, times. */
function recordFields({ data, meta }: SessionRecord): string[] {
  const fields: string[] = []
  for (const key of Object.keys(data)) fields.push(DATA + key, encodeValue(data[key]))
  for (const key of meta.flash ?? []) if (Object.hasOwn(data, key)) fields.push(FLASH + key, MARKED)
  fields.push(...timeFields(meta))
  return fields
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
