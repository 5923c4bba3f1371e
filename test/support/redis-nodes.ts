/**
 * @module Throwaway Redis topologies on 127.0.0.1 for tests: servers, replicas, Sentinels and a small Cluster, each
 * a `redis-server` process with a generated config file in one temporary directory. Every process is ended by its
 * own pid: `kill()` (SIGKILL, a crash) for one, `stop()` for all that still run.
 */

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, spawnTracked, type TrackedProcess, waitFor } from './processes.ts'
import { answersPing } from './redis-server.ts'
import { RespConnection, RespError, type RespReply, RespStatus } from './resp.ts'

export interface RedisNode {
  readonly name: string
  readonly port: number
  readonly pid: number
  /** True until the process has exited. */
  readonly running: boolean
  /** One command on a fresh connection: the reply, error replies included (as `RespError`). */
  command(...args: string[]): Promise<RespReply>
  /** The reply as text (bulk strings, status replies and integers); throws on an error reply. */
  text(...args: string[]): Promise<string>
  /** Ends the process at once with SIGKILL, as a crash would, and waits for it to be gone. */
  kill(): Promise<void>
  /** Everything the process printed (its log goes to stdout). */
  output(): string
}

/** A set of Redis processes sharing one temporary directory; `stop()` ends every one still running. */
export class RedisNodes {
  readonly #dir: string
  readonly #nodes: { node: RedisNode; process: TrackedProcess }[] = []

  private constructor(dir: string) {
    this.#dir = dir
  }

  static async create(): Promise<RedisNodes> {
    return new RedisNodes(await mkdtemp(join(tmpdir(), 'edge-session-redis-nodes-')))
  }

  /** The processes started so far, running or not. */
  get nodes(): RedisNode[] {
    return this.#nodes.map(({ node }) => node)
  }

  /**
   * Starts a redis-server (or, with `sentinel`, a Sentinel) from a config file of `lines` plus the basics (port,
   * loopback, no persistence, its own directory), and resolves once it answers PING. Without `port`, a free one
   * is chosen (and another tried should it be taken in between).
   */
  async start(
    name: string,
    lines: readonly string[] = [],
    options: { sentinel?: boolean; port?: number } = {},
  ): Promise<RedisNode> {
    let lastError: unknown
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = options.port ?? (await freePort())
      try {
        return await this.#startOnce(name, port, lines, options.sentinel === true)
      } catch (error) {
        lastError = error
        if (options.port !== undefined || !/Address already in use/i.test(String(error))) throw error
      }
    }
    throw lastError
  }

  async #startOnce(name: string, port: number, lines: readonly string[], sentinel: boolean) {
    const dir = join(this.#dir, `${name}-${port}`)
    await mkdir(dir, { recursive: true })
    const config = join(dir, sentinel ? 'sentinel.conf' : 'redis.conf')
    const basics = [
      `port ${port}`,
      'bind 127.0.0.1',
      'daemonize no',
      'logfile ""',
      `dir ${dir}`,
      // A replica syncs at once: by default the master waits 5 s for more replicas before a diskless sync.
      ...(sentinel ? [] : ['save ""', 'appendonly no', 'repl-diskless-sync-delay 0']),
    ]
    // Sentinel rewrites its config file (what it learns, the new master after a failover): it must be writable.
    await writeFile(config, `${[...basics, ...lines].join('\n')}\n`)
    const redis = spawnTracked('redis-server', sentinel ? [config, '--sentinel'] : [config])
    const node: RedisNode = {
      name,
      port,
      get pid() {
        return redis.pid
      },
      get running() {
        return redis.running
      },
      command: (...args) => command(port, args),
      text: async (...args) => text(await command(port, args)),
      kill: () => redis.kill(),
      output: () => redis.output(),
    }
    this.#nodes.push({ node, process: redis })
    try {
      await waitFor(() => answersPing(port), {
        what: `${name} on port ${port} to answer PING`,
        timeoutMs: 10_000,
        intervalMs: 25,
        process: redis,
      })
    } catch (error) {
      await redis.kill()
      throw error
    }
    return node
  }

  /** Ends every process still running (SIGTERM, SIGKILL after 5 s), each by its pid, and removes the directory. */
  async stop(): Promise<void> {
    await Promise.all(this.#nodes.map(({ process }) => process.stop()))
    await rm(this.#dir, { recursive: true, force: true })
  }
}

async function command(port: number, args: string[]): Promise<RespReply> {
  const connection = await RespConnection.open(port)
  try {
    return await connection.send(args)
  } finally {
    connection.close()
  }
}

function text(reply: RespReply): string {
  if (reply instanceof RespError) throw new Error(reply.message)
  if (reply instanceof RespStatus) return reply.value
  if (Buffer.isBuffer(reply)) return reply.toString()
  if (typeof reply === 'number') return String(reply)
  throw new Error(`not a text reply: ${JSON.stringify(reply)}`)
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** A field of an `INFO` section's text (`role`, `master_link_status`...). */
export function infoField(info: string, field: string): string | undefined {
  const line = info.split('\r\n').find((entry) => entry.startsWith(`${field}:`))
  return line?.slice(field.length + 1)
}

/** Resolves once `replica` reports its link to the master up: it has synced (20 s at most). */
export function replicaSynced(replica: RedisNode, what: string): Promise<void> {
  return waitFor(
    async () => infoField(await replica.text('INFO', 'replication'), 'master_link_status') === 'up',
    { what, timeoutMs: 20_000 },
  )
}

export interface SentinelGroup {
  readonly name: string
  readonly master: RedisNode
  readonly replica: RedisNode
  readonly sentinels: RedisNode[]
}

/**
 * A master, one replica replicating from it, and three Sentinels monitoring it (quorum 2), with short
 * `down-after-milliseconds` and `failover-timeout`. Resolves once the replica is in sync and every Sentinel
 * knows the replica and the two other Sentinels: only then can they agree that the master is down and fail over.
 */
export async function startSentinelGroup(
  nodes: RedisNodes,
  { name = 'sessions', downAfter = 500, failoverTimeout = 2_000 } = {},
): Promise<SentinelGroup> {
  const master = await nodes.start('master')
  const replica = await nodes.start('replica', [`replicaof 127.0.0.1 ${master.port}`])
  await replicaSynced(replica, 'the replica to sync with the master')
  const sentinels = await Promise.all(
    [1, 2, 3].map((n) =>
      nodes.start(
        `sentinel-${n}`,
        [
          `sentinel monitor ${name} 127.0.0.1 ${master.port} 2`,
          `sentinel down-after-milliseconds ${name} ${downAfter}`,
          `sentinel failover-timeout ${name} ${failoverTimeout}`,
          `sentinel parallel-syncs ${name} 1`,
        ],
        { sentinel: true },
      ),
    ),
  )
  // Sentinels find the replica in the master's INFO, and each other through hello messages (every 2 s).
  await waitFor(
    async () => {
      for (const sentinel of sentinels) {
        const known = await sentinel.command('SENTINEL', 'SENTINELS', name)
        const replicas = await sentinel.command('SENTINEL', 'REPLICAS', name)
        if (!Array.isArray(known) || known.length !== 2) return false
        if (!Array.isArray(replicas) || replicas.length !== 1) return false
      }
      return true
    },
    {
      what: 'every Sentinel to know the replica and the other Sentinels',
      timeoutMs: 30_000,
      intervalMs: 100,
    },
  )
  return { name, master, replica, sentinels }
}

/** The address the Sentinels currently give for the master, as a port on 127.0.0.1. */
export async function sentinelMasterPort(sentinel: RedisNode, name: string): Promise<number> {
  const reply = await sentinel.command('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)
  if (!Array.isArray(reply) || reply.length !== 2) throw new Error(`no master for ${name}`)
  return Number(String(reply[1]))
}

/**
 * A Redis Cluster of `size` masters without replicas, the 16384 slots split between them. Each node's cluster bus
 * port is chosen free too (by default it would be its port + 10000, which may be taken or out of range).
 */
export async function startCluster(nodes: RedisNodes, size = 3): Promise<RedisNode[]> {
  const members: RedisNode[] = []
  const buses: number[] = []
  for (let i = 0; i < size; i++) {
    const bus = await freePort()
    buses.push(bus)
    members.push(
      await nodes.start(`cluster-${i}`, [
        'cluster-enabled yes',
        'cluster-config-file nodes.conf',
        'cluster-node-timeout 2000',
        `cluster-port ${bus}`,
      ]),
    )
  }
  const per = Math.ceil(16384 / size)
  await Promise.all(
    members.map((member, i) =>
      member.text('CLUSTER', 'ADDSLOTSRANGE', String(i * per), String(Math.min(16383, (i + 1) * per - 1))),
    ),
  )
  const [first, ...others] = members as [RedisNode, ...RedisNode[]]
  for (const [i, other] of others.entries()) {
    await first.text('CLUSTER', 'MEET', '127.0.0.1', String(other.port), String(buses[i + 1]))
  }
  await waitFor(
    async () => {
      for (const member of members) {
        const info = await member.text('CLUSTER', 'INFO')
        if (infoField(info, 'cluster_state') !== 'ok') return false
        if (infoField(info, 'cluster_known_nodes') !== String(size)) return false
      }
      return true
    },
    { what: 'the cluster to form', timeoutMs: 30_000, intervalMs: 100 },
  )
  return members
}
