/** @module The local Upstash endpoint, checked with the real @upstash/redis client and with raw HTTP. */
import { errors } from '@upstash/redis'
import { describe, expect, it } from 'vitest'
import { useLocalUpstash } from '../../support/use-local-upstash.ts'

const local = useLocalUpstash()

/** A raw request, as a client without @upstash/redis would send it. */
async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${local.endpoint.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${local.endpoint.token}`, ...headers },
    body: JSON.stringify(body),
  })
  return { status: response.status, body: (await response.json()) as unknown }
}

const b64 = (text: string) => Buffer.from(text).toString('base64')

describe('with the @upstash/redis client and its default options', () => {
  it('stores and reads strings, including non-ASCII text, and reports nil as null', async () => {
    const redis = local.client()
    expect(await redis.set('greeting', 'héllo, wörld ✓ 🎉')).toBe('OK')
    expect(await redis.get('greeting')).toBe('héllo, wörld ✓ 🎉')
    expect(await redis.get('missing')).toBeNull()
    expect(await local.direct('GET', 'greeting')).toEqual(Buffer.from('héllo, wörld ✓ 🎉'))
  })

  it('returns integers as numbers and parses JSON-looking strings (automatic deserialization)', async () => {
    const redis = local.client()
    expect(await redis.incr('n')).toBe(1)
    expect(await redis.incrby('n', 41)).toBe(42)
    expect(await redis.incrbyfloat('f', 1.5)).toBe(1.5)
    await redis.set('obj', { a: 1, b: [true, null] })
    expect(await redis.get('obj')).toEqual({ a: 1, b: [true, null] })
    // What a session store has to defend against: the string "1.5" comes back as a number by default.
    await redis.set('text', '1.5')
    expect(await redis.get('text')).toBe(1.5)
    expect(await local.client({ automaticDeserialization: false }).get('text')).toBe('1.5')
  })

  it('reads hashes: HGETALL as an object from Redis flat array, null when missing', async () => {
    const redis = local.client()
    expect(await redis.hset('h', { name: 'ada', age: 36, tags: ['x'] })).toBe(3)
    expect(await redis.hgetall('h')).toEqual({ name: 'ada', age: 36, tags: ['x'] })
    expect(await redis.hgetall('nope')).toBeNull()
    expect(await redis.hdel('h', 'age')).toBe(1)
    expect(await redis.hkeys('h')).toEqual(['name', 'tags'])
  })

  it('runs explicit pipelines in one request, one result per command', async () => {
    const redis = local.client()
    const results = await redis.pipeline().set('a', 'x').get('a').incr('c').hset('h', { f: 'v' }).exec()
    expect(results).toEqual(['OK', 'x', 1, 1])
    expect(local.endpoint.requests).toEqual([
      {
        path: '/pipeline',
        commands: [
          ['set', 'a', 'x'],
          ['get', 'a'],
          ['incr', 'c'],
          ['hset', 'h', 'f', 'v'],
        ],
      },
    ])
    expect(local.endpoint.commandCount).toBe(4)
  })

  it('keeps each failure of a pipeline to its own command', async () => {
    const redis = local.client()
    await redis.hset('h', { f: 'v' })
    const results = await redis.pipeline().set('a', 'x').incr('h').get('a').exec({ keepErrors: true })
    expect(results[0]).toEqual({ result: 'OK', error: undefined })
    expect(results[1]?.error).toMatch(/^WRONGTYPE/)
    expect(results[2]).toEqual({ result: 'x', error: undefined })
    await expect(redis.pipeline().incr('h').get('a').exec()).rejects.toThrow(/WRONGTYPE/)
  })

  it('batches concurrent commands into one pipeline request (auto-pipelining)', async () => {
    const redis = local.client()
    const replies = await Promise.all([redis.set('k1', 'a'), redis.set('k2', 'b'), redis.incr('k3')])
    expect(replies).toEqual(['OK', 'OK', 1])
    expect(local.endpoint.requestCount).toBe(1)
    expect(local.endpoint.requests[0]?.path).toBe('/pipeline')
    expect(await Promise.all([redis.get('k1'), redis.get('k2'), redis.incr('k3')])).toEqual(['a', 'b', 2])
  })

  it('runs transactions inside MULTI/EXEC', async () => {
    const redis = local.client()
    const results = await redis.multi().set('t', 'x').incr('tc').get('t').exec()
    expect(results).toEqual(['OK', 1, 'x'])
    expect(local.endpoint.requests).toEqual([
      {
        path: '/multi-exec',
        commands: [
          ['set', 't', 'x'],
          ['incr', 'tc'],
          ['get', 't'],
        ],
      },
    ])
  })

  it('runs scripts with EVAL and EVALSHA, loading a script the server does not know', async () => {
    const redis = local.client()
    expect(await redis.eval('return ARGV[1]', [], ['hi'])).toBe('hi')
    expect(await redis.eval("return {KEYS[1], 7, redis.call('SET', KEYS[1], 'v')}", ['sk'], [])).toEqual([
      'sk',
      7,
      'OK',
    ])
    const script = redis.createScript<[string, number]>("return {redis.call('GET', KEYS[1]), 2}")
    local.endpoint.resetCounts()
    expect(await script.exec(['sk'], [])).toEqual(['v', 2])
    // EVALSHA fails with NOSCRIPT, then EVAL caches it; the next run needs EVALSHA alone.
    expect(local.endpoint.requests.map((request) => request.commands[0]?.[0])).toEqual(['evalsha', 'eval'])
    expect(await script.exec(['sk'], [])).toEqual(['v', 2])
    expect(local.endpoint.requestCount).toBe(3)
  })

  it('rejects with the Redis error of a failing command', async () => {
    const redis = local.client()
    await redis.hset('h', { f: 'v' })
    await expect(redis.incr('h')).rejects.toThrow(errors.UpstashError)
    await expect(redis.incr('h')).rejects.toThrow(/WRONGTYPE/)
    await expect(redis.eval("return redis.error_reply('MYERR nope')", [], [])).rejects.toThrow(/MYERR nope/)
  })

  it('answers every request with the given refusal while one is set, and serves again after', async () => {
    const redis = local.client({ retry: false })
    await redis.set('kept', 'yes')
    local.endpoint.refuse({ status: 429, error: 'ERR max requests limit exceeded' })
    try {
      await expect(redis.get('kept')).rejects.toThrow(/ERR max requests limit exceeded/)
      await expect(redis.set('kept', 'no')).rejects.toThrow(errors.UpstashError)
      expect(await post('/', ['GET', 'kept'])).toEqual({
        status: 429,
        body: { error: 'ERR max requests limit exceeded' },
      })
    } finally {
      local.endpoint.refuse(null)
    }
    expect(await redis.get('kept')).toBe('yes')
  })

  it('refuses a client with the wrong token', async () => {
    const redis = local.client({ token: 'wrong' })
    await expect(redis.get('a')).rejects.toThrow(/Unauthorized/)
    expect(local.endpoint.requestCount).toBe(0)
  })

  it('stops answering when stopped and answers again on the same port when restarted', async () => {
    const redis = local.client({ retry: false })
    await redis.set('kept', 'yes')
    await local.endpoint.stop()
    expect(local.endpoint.listening).toBe(false)
    await expect(redis.get('kept')).rejects.toThrow()
    await local.endpoint.start()
    expect(await redis.get('kept')).toBe('yes')
  })
})

describe('the wire format', () => {
  it('answers 401 without the bearer token, and with a wrong one', async () => {
    const noAuth = await fetch(local.endpoint.url, { method: 'POST', body: '["PING"]' })
    expect(noAuth.status).toBe(401)
    expect(await noAuth.json()).toEqual({ error: 'Unauthorized' })
    expect((await post('/', ['PING'], { authorization: 'Bearer nope' })).status).toBe(401)
  })

  it('answers a failing single command with 400 and {"error"}', async () => {
    expect(await post('/', ['NOSUCHCOMMAND'])).toEqual({
      status: 400,
      body: { error: expect.stringMatching(/^ERR unknown command/) },
    })
    expect((await post('/', 'not a command')).status).toBe(400)
  })

  it('sends plain text results without Upstash-Encoding', async () => {
    await post('/', ['HSET', 'h', 'f', 'v', 'g', '2'])
    expect(await post('/', ['SET', 'k', 'v'])).toEqual({ status: 200, body: { result: 'OK' } })
    expect(await post('/', ['HGETALL', 'h'])).toEqual({ status: 200, body: { result: ['f', 'v', 'g', '2'] } })
    expect(await post('/', ['GET', 'nope'])).toEqual({ status: 200, body: { result: null } })
    expect(await post('/', ['PING'])).toEqual({ status: 200, body: { result: 'PONG' } })
  })

  it('base64-encodes every string with Upstash-Encoding: base64, except a top-level "OK"', async () => {
    const base64 = { 'upstash-encoding': 'base64' }
    expect(await post('/', ['SET', 'k', 'é'], base64)).toEqual({ status: 200, body: { result: 'OK' } })
    expect(await post('/', ['GET', 'k'], base64)).toEqual({ status: 200, body: { result: b64('é') } })
    expect(await post('/', ['PING'], base64)).toEqual({ status: 200, body: { result: b64('PONG') } })
    expect(await post('/', ['INCR', 'n'], base64)).toEqual({ status: 200, body: { result: 1 } })
    const script = "return {redis.call('SET', 'a', 'b'), 5, {'x', false}, redis.call('GET', 'k')}"
    expect(await post('/', ['EVAL', script, '0'], base64)).toEqual({
      status: 200,
      body: { result: [b64('OK'), 5, [b64('x'), null], b64('é')] },
    })
  })

  it('answers a pipeline with one item per command, failures included', async () => {
    expect(await post('/pipeline', [['SET', 'p', '1'], ['NOPE'], ['INCR', 'p']])).toEqual({
      status: 200,
      body: [{ result: 'OK' }, { error: expect.stringMatching(/^ERR unknown command/) }, { result: 2 }],
    })
  })

  it('applies a transaction whole, keeps runtime errors per item, and refuses one that cannot queue', async () => {
    await post('/', ['HSET', 'h', 'f', 'v'])
    expect(
      await post('/multi-exec', [
        ['SET', 'm', '1'],
        ['INCR', 'h'],
        ['INCR', 'm'],
      ]),
    ).toEqual({
      status: 200,
      body: [{ result: 'OK' }, { error: expect.stringMatching(/^WRONGTYPE/) }, { result: 2 }],
    })
    const refused = await post('/multi-exec', [['SET', 'never', '1'], ['NOPE']])
    expect(refused).toEqual({ status: 400, body: { error: expect.stringMatching(/^ERR unknown command/) } })
    expect(await local.direct('EXISTS', 'never')).toBe(0)
  })

  it('is atomic: a transaction is never interleaved with concurrent requests', async () => {
    // Each transaction reads the counter and appends what it read; interleaving would repeat a value.
    const transactions = Array.from({ length: 30 }, () =>
      post('/multi-exec', [
        ['INCR', 'c'],
        ['RPUSH', 'log', 'entry'],
        ['GET', 'c'],
      ]),
    )
    const values = (await Promise.all(transactions)).map(
      ({ body }) => (body as { result: unknown }[])[2]?.result,
    )
    expect(new Set(values).size).toBe(30)
    expect(await local.direct('LLEN', 'log')).toBe(30)
  })

  it('counts requests and commands', async () => {
    await post('/', ['SET', 'a', '1'])
    await post('/pipeline', [
      ['GET', 'a'],
      ['GET', 'b'],
    ])
    await post('/multi-exec', [
      ['INCR', 'a'],
      ['INCR', 'a'],
      ['INCR', 'a'],
    ])
    expect(local.endpoint.requestCount).toBe(3)
    expect(local.endpoint.commandCount).toBe(6)
    expect(local.endpoint.requests.map((request) => request.path)).toEqual(['/', '/pipeline', '/multi-exec'])
  })
})
