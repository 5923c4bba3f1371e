/** @module Starts a throwaway redis-server on a free loopback port, without persistence, and stops it by its pid. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, spawnTracked, waitFor } from './processes.ts'
import { RespConnection, RespStatus } from './resp.ts'

// Where bench/http.ts imports it from.
export { freePort } from './processes.ts'

export interface RedisServer {
  readonly host: '127.0.0.1'
  readonly port: number
  readonly pid: number
  /** Stops this server (SIGTERM, then SIGKILL if it lingers) and removes its working directory. */
  stop(): Promise<void>
}

export interface StartRedisOptions {
  /** The binary to run; `redis-server` on PATH by default (Debian's package installs it in /usr/bin). */
  command?: string
  /** How long to wait for the first PING to answer, in ms. */
  startTimeout?: number
}

/**
 * Starts `redis-server` on a free port of 127.0.0.1 with persistence off (`--save ''`, `--appendonly no`), in a
 * fresh temporary directory, and resolves once it answers PING. A port taken between choosing it and binding
 * it is retried with another.
 */
export async function startRedisServer(options: StartRedisOptions = {}): Promise<RedisServer> {
  let lastError: unknown
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      return await startOnce(await freePort(), options)
    } catch (error) {
      lastError = error
      if (!(error instanceof PortInUseError)) throw error
    }
  }
  throw lastError
}

class PortInUseError extends Error {}

async function startOnce(port: number, options: StartRedisOptions): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'edge-session-redis-'))
  const redis = spawnTracked(options.command ?? 'redis-server', [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    '--daemonize',
    'no',
    '--logfile',
    '',
  ])
  const stop = async () => {
    await redis.stop()
    await rm(dir, { recursive: true, force: true })
  }
  try {
    await waitFor(() => answersPing(port), {
      what: `redis-server on port ${port} to answer PING`,
      timeoutMs: options.startTimeout ?? 10_000,
      intervalMs: 25,
      process: redis,
    })
  } catch (error) {
    await stop()
    throw /Address already in use/i.test(redis.output()) ? new PortInUseError(String(error)) : error
  }
  return { host: '127.0.0.1', port, pid: redis.pid, stop }
}

/** Whether a Redis server (or Sentinel) listens on `port` of 127.0.0.1 and answers PING. */
export async function answersPing(port: number): Promise<boolean> {
  const connection = await RespConnection.open(port)
  try {
    const reply = await connection.send(['PING'])
    return reply instanceof RespStatus && reply.value === 'PONG'
  } finally {
    connection.close()
  }
}
