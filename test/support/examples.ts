/**
 * @module Runs the Node, Deno and Bun examples as a user would, each in a process of its own on a free loopback
 * port: Node through tsx, Deno and Bun with the binaries from devDependencies. Every process is stopped by its pid.
 */

import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, spawnTracked, waitFor } from './processes.ts'

export const root = fileURLToPath(new URL('../../', import.meta.url))
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

/** An example running in a process of its own. */
export interface ExampleProcess extends RunningExample {
  readonly pid: number
}

export interface StartExampleOptions {
  /** How long it may take to answer, in ms; 90 s by default (Deno and Bun compile on their first start). */
  timeout?: number
  /** Node's own options, before the script (`--max-old-space-size=64`); only for `node`. */
  nodeArgs?: string[]
}

/** How each runtime starts the example: the same commands as the package.json scripts. */
function command(runtime: Exclude<Runtime, 'workerd'>, nodeArgs: string[]): [string, string[]] {
  switch (runtime) {
    case 'node':
      return [process.execPath, [...nodeArgs, '--import', 'tsx', 'examples/node/server.ts']]
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

/**
 * Starts the Node, Deno or Bun example with `env` added to this process's environment, on a free port of
 * 127.0.0.1, and resolves once it answers HTTP as that runtime. A port taken in between is retried with another.
 */
export async function startExample(
  runtime: Exclude<Runtime, 'workerd'>,
  env: Record<string, string>,
  options: StartExampleOptions = {},
): Promise<ExampleProcess> {
  let lastError: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    try {
      return await startOnce(runtime, port, env, options)
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
  { timeout = 90_000, nodeArgs = [] }: StartExampleOptions,
): Promise<ExampleProcess> {
  const [file, args] = command(runtime, nodeArgs)
  const example = spawnTracked(file, args, {
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
  })
  const url = `http://127.0.0.1:${port}`
  try {
    await waitFor(() => servedBy(url, runtime), {
      what: `the ${runtime} example to answer on ${url}`,
      timeoutMs: timeout,
      intervalMs: 100,
      process: example,
    })
  } catch (error) {
    await example.stop()
    throw error
  }
  return { runtime, url, pid: example.pid, output: example.output, stop: example.stop }
}

/**
 * Whether `url` answers as `runtime` (its `X-Served-By`). A path no route serves: the answer is a 404 that makes
 * no session and no store call.
 */
export async function servedBy(url: string, runtime: Runtime): Promise<boolean> {
  const response = await fetch(`${url}/readiness-probe`, { signal: AbortSignal.timeout(2000) })
  await response.arrayBuffer()
  return response.headers.get('x-served-by') === runtime
}
