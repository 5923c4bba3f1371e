/** @module Starts a throwaway redis-server on a free loopback port, without persistence, and stops it by its pid. */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RespConnection, RespStatus } from './resp.ts'

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

/** A port the kernel just handed out on 127.0.0.1; another process could take it before we bind it again. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port)
        else reject(new Error('no port assigned'))
      })
    })
  })
}

const running = new Set<ChildProcess>()

// A test worker that exits without its afterAll hooks (a crash, a timeout) must not leave redis-servers behind.
// Only the children started here are signalled, by their own pid.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

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
  const child = spawn(
    options.command ?? 'redis-server',
    [
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
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  running.add(child)
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      running.delete(child)
      resolve()
    })
  })
  const spawnFailure = new Promise<never>((_, reject) => {
    child.once('error', (error) => reject(new Error(`cannot start redis-server: ${error.message}`)))
  })
  const exitFailure = exited.then((): never => {
    const message = `redis-server exited at start: ${output.trim().split('\n').slice(-3).join(' | ')}`
    throw /Address already in use/i.test(output) ? new PortInUseError(message) : new Error(message)
  })
  // Both only matter while starting; afterwards they settle unobserved, which must not be an unhandled rejection.
  spawnFailure.catch(() => {})
  exitFailure.catch(() => {})

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }
    await rm(dir, { recursive: true, force: true })
  }

  try {
    await Promise.race([waitForPing(port, options.startTimeout ?? 10_000), spawnFailure, exitFailure])
  } catch (error) {
    await stop()
    throw error
  }
  if (child.pid === undefined) throw new Error('redis-server has no pid')
  return { host: '127.0.0.1', port, pid: child.pid, stop }
}

async function waitForPing(port: number, timeout: number): Promise<void> {
  const deadline = Date.now() + timeout
  for (;;) {
    try {
      const connection = await RespConnection.open(port)
      try {
        const reply = await connection.send(['PING'])
        if (reply instanceof RespStatus && reply.value === 'PONG') return
      } finally {
        connection.close()
      }
    } catch {
      // Not listening yet: retry below.
    }
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}
