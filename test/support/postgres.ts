/**
 * @module Starts a throwaway PostgreSQL (Debian's 15) on a free loopback port, in a temporary data directory, and
 * stops it by its pid. As root it runs as the `postgres` user, since PostgreSQL refuses to run as root.
 */
import { execFileSync } from 'node:child_process'
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, spawnTracked, type TrackedProcess, waitFor } from './processes.ts'

export const POSTGRES_BIN = '/usr/lib/postgresql/15/bin'

export interface PostgresServer {
  readonly port: number
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication, loopback only). */
  readonly url: string
  /** The postmaster's pid. */
  readonly pid: number
  /** Stops the server (fast shutdown) and keeps its data directory, for `start()`. */
  halt(): Promise<void>
  /** Immediate shutdown (SIGQUIT): every backend ends at once, as in a crash; the next start recovers from WAL. */
  crash(): Promise<void>
  /** Starts it again on the same port and data directory, after `halt()` or `crash()`. */
  start(): Promise<void>
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>
}

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0

/** `command args` as the `postgres` user when this process is root, as it is otherwise. */
function asPostgres(command: string, args: string[]): [string, string[]] {
  return asRoot ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args]
}

export async function startPostgres(): Promise<PostgresServer> {
  const dir = await mkdtemp(join(tmpdir(), 'edge-session-postgres-'))
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim())
    await chown(dir, uid, gid)
  }
  const data = join(dir, 'data')
  const [initdb, initArgs] = asPostgres(join(POSTGRES_BIN, 'initdb'), [
    '-D',
    data,
    '-U',
    'postgres',
    '--auth=trust',
    '-E',
    'UTF8',
    '--locale=C',
    '--no-sync',
  ])
  execFileSync(initdb, initArgs, { stdio: 'pipe' })

  const port = await freePort()
  let server: TrackedProcess | undefined
  let pid = 0

  const start = async () => {
    const [command, args] = asPostgres(join(POSTGRES_BIN, 'postgres'), [
      '-D',
      data,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'fsync=off',
      '-c',
      'full_page_writes=off',
      '-c',
      'max_connections=200',
    ])
    server = spawnTracked(command, args)
    await waitFor(/ready to accept connections/, {
      what: `postgres on port ${port}`,
      timeoutMs: 30_000,
      process: server,
    })
    // The postmaster's own pid (under runuser it is a child): the one to signal.
    pid = Number((await readFile(join(data, 'postmaster.pid'), 'utf8')).split('\n')[0])
  }

  const signalAndWait = async (signal: NodeJS.Signals) => {
    if (!server?.running) return
    try {
      process.kill(pid, signal)
    } catch {
      // Already gone.
    }
    await server.exited
  }

  await start()
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    get pid() {
      return pid
    },
    halt: () => signalAndWait('SIGINT'),
    crash: () => signalAndWait('SIGQUIT'),
    start,
    async stop() {
      await signalAndWait('SIGINT')
      await rm(dir, { recursive: true, force: true })
    },
  }
}
