/**
 * @module The Workers example as `wrangler deploy` would upload it, run by Miniflare (workerd) with wrangler.toml's
 * bindings and its state persisted in a folder, so a test can run two instances on one state or restart one.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { Miniflare } from 'miniflare'
import { afterAll, beforeAll } from 'vitest'
import { unstable_getMiniflareWorkerOptions } from 'wrangler'
import { root } from '../examples.ts'
import { bundleWorker } from './workers.ts'

const wranglerEnv = { CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' }
const EXAMPLE_SECRET = 'example-test-secret-of-at-least-32-characters'

export interface PersistedWorker {
  /** A new, empty state folder. */
  state(): Promise<string>
  /** An instance on the state in `persist` (KV, D1 and, for that store, Durable Objects). */
  start(persist: string): Promise<Miniflare>
  stop(mf: Miniflare): Promise<void>
}

/**
 * Registers the hooks that bundle the example once for the test file and dispose of every instance after it.
 * `store` is the Worker's SESSION_STORE.
 */
export function persistedWorker(store: 'd1' | 'durable-object'): PersistedWorker {
  let scratch: string | undefined
  let bundle: Awaited<ReturnType<typeof bundleWorker>> | undefined
  const running: Miniflare[] = []

  beforeAll(async () => {
    // Inside the project (.tmp/ is git-ignored): workerd refuses persist paths that climb out with `..`.
    await mkdir(join(root, '.tmp'), { recursive: true })
    scratch = await mkdtemp(join(root, '.tmp', `cf-${store}-example-`))
    bundle = await bundleWorker()
  }, 120_000)

  afterAll(async () => {
    await Promise.allSettled(running.map((mf) => mf.dispose()))
    await bundle?.remove()
    if (scratch) await rm(scratch, { recursive: true, force: true })
  })

  return {
    state: () => mkdtemp(join(scratch as string, 'state-')),
    async start(persist) {
      Object.assign(process.env, wranglerEnv)
      const { workerOptions } = unstable_getMiniflareWorkerOptions(join(root, 'wrangler.toml'))
      const script = (bundle as NonNullable<typeof bundle>).script
      const objects = store === 'durable-object'
      const mf = new Miniflare({
        name: 'edge-session-example',
        compatibilityDate: workerOptions.compatibilityDate,
        compatibilityFlags: workerOptions.compatibilityFlags,
        kvNamespaces: workerOptions.kvNamespaces,
        d1Databases: workerOptions.d1Databases,
        ...(objects ? { durableObjects: workerOptions.durableObjects, durableObjectsPersist: persist } : {}),
        modules: true,
        scriptPath: script,
        // Module names are paths relative to this root; workerd refuses names that climb out of it with `..`.
        modulesRoot: dirname(script),
        bindings: { SESSION_SECRET: EXAMPLE_SECRET, SESSION_STORE: store },
        kvPersist: persist,
        d1Persist: persist,
      })
      running.push(mf)
      await mf.ready
      return mf
    },
    async stop(mf) {
      running.splice(running.indexOf(mf), 1)
      await mf.dispose()
    },
  }
}
