/**
 * @module The Node example with REDIS_URL: sessions kept in a throwaway redis-server through redisStore, so a
 * visit count carries on from one example process to the next, Node's and then Bun's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client } from '../support/examples/client.ts'
import { type RunningExample, startExample } from '../support/examples.ts'
import { type RedisServer, startRedisServer } from '../support/redis-server.ts'
import { RespConnection } from '../support/resp.ts'

const SECRET = 'redis-example-test-secret-0123456789abcdefgh'

let redis: RedisServer
const examples: RunningExample[] = []

beforeAll(async () => {
  redis = await startRedisServer()
})

afterAll(async () => {
  await Promise.all(examples.map((example) => example.stop()))
  await redis?.stop()
})

async function start(runtime: 'node' | 'bun' = 'node'): Promise<RunningExample> {
  const example = await startExample(runtime, {
    SESSION_SECRET: SECRET,
    REDIS_URL: `redis://127.0.0.1:${redis.port}`,
  })
  examples.push(example)
  return example
}

async function sessionKeys(): Promise<string[]> {
  const connection = await RespConnection.open(redis.port)
  try {
    const reply = await connection.send(['KEYS', 'sess:*'])
    // Session hashes only: not the live set, the users set nor the user indexes.
    return Array.isArray(reply) ? reply.map(String).filter((key) => /^sess:[\w-]{43}$/.test(key)) : []
  } finally {
    connection.close()
  }
}

describe('the Node example with REDIS_URL', () => {
  it('keeps sessions in Redis: visits continue in a second example process, and under Bun', async () => {
    const client = new Client()
    const first = await start()
    expect(await client.page(first)).toContain('with the Redis store.')
    expect(await client.session(first)).toEqual({ visits: 2, user: null })
    expect(await sessionKeys()).toHaveLength(1)
    await client.login(first, 'ada')
    await first.stop()

    const second = await start()
    expect(await client.session(second)).toEqual({ visits: 3, user: 'ada' })
    expect(await client.session(second)).toEqual({ visits: 4, user: 'ada' })
    // One session: the record of the id before login was deleted when login regenerated it.
    expect(await sessionKeys()).toHaveLength(1)
    await second.stop()

    // Bun runs the same example and ioredis over its node:net.
    const bun = await start('bun')
    expect(await client.session(bun)).toEqual({ visits: 5, user: 'ada' })
    await client.logout(bun)
    expect(await sessionKeys()).toHaveLength(0)
  }, 120_000)
})
