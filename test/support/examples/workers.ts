/**
 * @module Runs the Cloudflare Worker example as a user would: bundled by Wrangler, then served by Miniflare
 * (workerd) on a free loopback port.
 */

import { execFile } from 'node:child_process'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { Miniflare } from 'miniflare'
import { unstable_getMiniflareWorkerOptions } from 'wrangler'
import { type RunningExample, root, servedBy } from '../examples.ts'
import { waitFor } from '../processes.ts'

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
  await waitFor(() => servedBy(url, 'workerd'), {
    what: `the Worker to answer on ${url}`,
    timeoutMs: 30_000,
    intervalMs: 100,
  })
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
