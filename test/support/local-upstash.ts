/** @module One call to start redis-server and the Upstash endpoint in front of it, for tests and scripts. */
import { Redis, type RedisConfigNodejs } from '@upstash/redis'
import { type RedisServer, startRedisServer } from './redis-server.ts'
import { RespConnection, RespError, type RespReply } from './resp.ts'
import { startUpstashEndpoint, type UpstashEndpoint } from './upstash-endpoint.ts'

export interface LocalUpstash {
  readonly redisServer: RedisServer
  readonly endpoint: UpstashEndpoint
  /** A new `@upstash/redis` client for the endpoint: default options unless overridden. */
  client(options?: Partial<RedisConfigNodejs>): Redis
  /**
   * Runs a command on Redis directly, past the endpoint (not counted): for setup and for inspecting what a
   * store wrote. Error replies reject.
   */
  direct(...args: string[]): Promise<RespReply>
  /** Empties Redis (direct) and resets the endpoint's counts. */
  reset(): Promise<void>
  /** Stops the endpoint and redis-server. */
  stop(): Promise<void>
}

export async function startLocalUpstash(): Promise<LocalUpstash> {
  const redisServer = await startRedisServer()
  let endpoint: UpstashEndpoint
  let connection: RespConnection
  try {
    endpoint = await startUpstashEndpoint({ redisPort: redisServer.port })
    connection = await RespConnection.open(redisServer.port)
  } catch (error) {
    await redisServer.stop()
    throw error
  }
  const direct = async (...args: string[]) => {
    const reply = await connection.send(args)
    if (reply instanceof RespError) throw new Error(reply.message)
    return reply
  }
  return {
    redisServer,
    endpoint,
    client: (options) => new Redis({ url: endpoint.url, token: endpoint.token, ...options }),
    direct,
    async reset() {
      await direct('FLUSHALL')
      endpoint.resetCounts()
    },
    async stop() {
      connection.close()
      await endpoint.stop()
      await redisServer.stop()
    },
  }
}
