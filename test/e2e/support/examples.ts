/**
 * @module Runs the examples as a user would, each in a process of its own on a free loopback port: Node (through
 * tsx), Deno and Bun with the binaries from devDependencies, and Workers in Miniflare from the bundle Wrangler
 * builds. Every process is stopped by its own pid.
 */

import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Miniflare } from 'miniflare'
import { unstable_getMiniflareWorkerOptions } from 'wrangler'
import { freePort } from '../../support/redis-server.ts'

export const root = fileURLToPath(new URL('../../../', import.meta.url))
const bin = (name: string) => join(root, 'node_modules/.bin', name)

export type Runtime = 'node' | 'deno' | 'bun' | 'workerd'

/** One running example. */
export interface RunningExample {
  readonly runtime: Runtime
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /** Everything the process printed, for failure messages. */
  output(): string
  stop(): Promise<void>
}

/** How each runtime starts the example: the same commands as the package.json scripts. */
function command(runtime: Exclude<Runtime, 'workerd'>): [string, string[]] {
  switch (runtime) {
    case 'node':
      return [process.execPath, ['--import', 'tsx', 'examples/node/server.ts']]
    case 'bun':
      return [bin('bun'), ['examples/node/server.ts']]
    case 'deno':
      return [
        bin('deno'),
        [
          'run',
          '--config',
          'examples/deno/deno.json',
          '--allow-net',
          '--allow-env',
          '--allow-read',
          '--allow-write',
          'examples/deno/main.ts',
        ],
      ]
  }
}

const running = new Set<ChildProcess>()
// A worker that dies without its afterAll hooks must not leave servers behind: only our own children, by pid.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/**
 * Starts the Node, Deno or Bun example with `env` added to this process's environment, on a free port of
 * 127.0.0.1, and resolves once it answers HTTP as that runtime. A port taken in between is retried with another.
 */
export async function startExample(
  runtime: Exclude<Runtime, 'workerd'>,
  env: Record<string, string>,
  timeout = 90_000,
): Promise<RunningExample> {
  let lastError: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    try {
      return await startOnce(runtime, port, env, timeout)
    } catch (error) {
      lastError = error
      if (!/EADDRINUSE|address already in use|AddrInUse/i.test(String(error))) throw error
    }
  }
  throw lastError
}

async function startOnce(
  runtime: Exclude<Runtime, 'workerd'>,
  port: number,
  env: Record<string, string>,
  timeout: number,
): Promise<RunningExample> {
  const [file, args] = command(runtime)
  const child = spawn(file, args, {
    cwd: root,
    env: {
      ...process.env,
      // Deno reads the repository's package.json unless told not to; the example's deno.json is its config.
      DENO_NO_PACKAGE_JSON: '1',
      DENO_NO_UPDATE_CHECK: '1',
      NO_COLOR: '1',
      HOST: '127.0.0.1',
      PORT: String(port),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
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
  const url = `http://127.0.0.1:${port}`
  const example: RunningExample = {
    runtime,
    url,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
        await exited
        clearTimeout(timer)
      }
    },
  }
  try {
    await waitUntilServing(url, runtime, timeout, () => {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`the ${runtime} example exited at start:\n${output}`)
      }
    })
  } catch (error) {
    await example.stop()
    throw error
  }
  return example
}

/**
 * Polls until `url` answers as `runtime` (its `X-Served-By`). A path no route serves: the answer is a 404 that
 * makes no session and no store call.
 */
async function waitUntilServing(url: string, runtime: Runtime, timeout: number, check: () => void) {
  const deadline = Date.now() + timeout
  for (;;) {
    check()
    try {
      const response = await fetch(`${url}/readiness-probe`, { signal: AbortSignal.timeout(2000) })
      await response.arrayBuffer()
      if (response.headers.get('x-served-by') === runtime) return
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline)
      throw new Error(`the ${runtime} example did not answer on ${url} in ${timeout} ms`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const wranglerEnv = { CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' }

/**
 * Bundles a Worker as `wrangler deploy` would (wrangler.toml's settings; `entry` replaces its `main`) into a
 * fresh temporary folder, and returns the script's path and a function removing the folder.
 */
export async function bundleWorker(entry?: string): Promise<{ script: string; remove(): Promise<void> }> {
  const out = await mkdtemp(join(tmpdir(), 'edge-session-e2e-worker-'))
  const args = [join(root, 'node_modules/wrangler/bin/wrangler.js'), 'deploy', '--dry-run', '--outdir', out]
  if (entry) args.push(entry, '--tsconfig', 'examples/cloudflare/tsconfig.json')
  await promisify(execFile)(process.execPath, args, { cwd: root, env: { ...process.env, ...wranglerEnv } })
  const file = (await readdir(out)).find((name) => name.endsWith('.js'))
  if (!file) throw new Error(`wrangler built no .js file in ${out}`)
  return { script: join(out, file), remove: () => rm(out, { recursive: true, force: true }) }
}

/** A bundled Worker served by Miniflare (workerd) on a free port of 127.0.0.1, with the given bindings. */
export async function startWorker(script: string, bindings: Record<string, string>): Promise<RunningExample> {
  Object.assign(process.env, wranglerEnv)
  const { workerOptions } = unstable_getMiniflareWorkerOptions(join(root, 'wrangler.toml'))
  const kvPersist = await mkdtemp(join(tmpdir(), 'edge-session-e2e-kv-'))
  const mf = new Miniflare({
    name: 'edge-session-example',
    compatibilityDate: workerOptions.compatibilityDate,
    compatibilityFlags: workerOptions.compatibilityFlags,
    kvNamespaces: workerOptions.kvNamespaces,
    kvPersist,
    modules: true,
    scriptPath: script,
    // Module names are paths relative to this root; workerd refuses names that climb out of it with `..`.
    modulesRoot: dirname(script),
    bindings,
    host: '127.0.0.1',
    port: 0,
  })
  const ready = await mf.ready
  const url = ready.origin
  await waitUntilServing(url, 'workerd', 30_000, () => {})
  return {
    runtime: 'workerd',
    url,
    output: () => '',
    async stop() {
      await mf.dispose()
      await rm(kvPersist, { recursive: true, force: true })
    },
  }
}
