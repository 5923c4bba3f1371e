/**
 * @module Starts a throwaway MariaDB (`mariadbd` from Debian's mariadb-server) on a free loopback port, in a
 * fresh temporary datadir, and stops it by its pid.
 */
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createConnection } from 'mysql2/promise'
import { freePort, spawnTracked, type TrackedProcess, waitFor } from './processes.ts'

export interface MariaDbServer {
  readonly host: '127.0.0.1'
  readonly port: number
  readonly pid: number
  /** `mysql://root@127.0.0.1:<port>/test`: the `test` database, created at start. */
  readonly url: string
  /** SIGKILL, as a crash would: the datadir stays, so `restart()` finds every committed row. */
  kill(): Promise<void>
  /** Starts the server again on the same port and datadir, after `kill()`. */
  restart(): Promise<void>
  /** Stops the server (SIGTERM, then SIGKILL) and removes its directory. */
  stop(): Promise<void>
}

export interface StartMariaDbOptions {
  /** Extra server options, e.g. `--max-allowed-packet=1M`. */
  args?: readonly string[]
}

function program(name: string, dirs: readonly string[]): string {
  for (const dir of dirs) if (existsSync(join(dir, name))) return join(dir, name)
  return name
}

/**
 * `mariadb-install-db` into a temporary datadir, then `mariadbd` on a free port of 127.0.0.1 with grant tables
 * skipped (root, no password), resolving once it answers. A port taken meanwhile is retried with another.
 */
export async function startMariaDb(options: StartMariaDbOptions = {}): Promise<MariaDbServer> {
  const dir = await mkdtemp(join(tmpdir(), 'edge-session-mariadb-'))
  const datadir = join(dir, 'data')
  const install = spawnTracked(program('mariadb-install-db', ['/usr/bin', '/usr/sbin']), [
    '--no-defaults',
    `--datadir=${datadir}`,
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
    '--user=root',
  ])
  const end = await install.exited
  if (end.code !== 0) {
    await rm(dir, { recursive: true, force: true })
    throw new Error(`mariadb-install-db failed (${end.error?.message ?? end.code}):\n${install.output()}`)
  }
  let port = 0
  let server: TrackedProcess | undefined
  const launch = async (): Promise<void> => {
    server = spawnTracked(program('mariadbd', ['/usr/sbin', '/sbin']), [
      '--no-defaults',
      `--datadir=${datadir}`,
      `--socket=${join(dir, 'mariadb.sock')}`,
      `--pid-file=${join(dir, 'mariadb.pid')}`,
      '--bind-address=127.0.0.1',
      `--port=${port}`,
      '--skip-grant-tables',
      '--skip-name-resolve',
      '--user=root',
      '--innodb-buffer-pool-size=16M',
      '--innodb-log-file-size=8M',
      '--skip-log-bin',
      ...(options.args ?? []),
    ])
    const current = server
    await waitFor(() => answers(port), {
      what: `mariadbd on port ${port} to answer`,
      timeoutMs: 30_000,
      intervalMs: 50,
      process: current,
    })
  }
  let lastError: unknown
  for (let attempt = 0; attempt < 5; attempt++) {
    port = await freePort()
    try {
      await launch()
      lastError = undefined
      break
    } catch (error) {
      lastError = error
      await server?.stop()
      if (!/address already in use/i.test(String(error))) break
    }
  }
  if (lastError !== undefined) {
    await rm(dir, { recursive: true, force: true })
    throw lastError
  }
  const admin = await createConnection({ host: '127.0.0.1', port, user: 'root' })
  await admin.query('CREATE DATABASE IF NOT EXISTS test')
  await admin.end()
  return {
    host: '127.0.0.1',
    port,
    get pid() {
      return server?.pid ?? -1
    },
    url: `mysql://root@127.0.0.1:${port}/test`,
    kill: async () => {
      await server?.kill()
    },
    restart: launch,
    stop: async () => {
      await server?.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

async function answers(port: number): Promise<boolean> {
  const connection = await createConnection({ host: '127.0.0.1', port, user: 'root', connectTimeout: 1000 })
  try {
    await connection.query('SELECT 1')
    return true
  } finally {
    await connection.end()
  }
}
