import { fileURLToPath } from 'node:url'
import { cloudflareTest } from '@cloudflare/vitest-pool-workers'
import { buildSync } from 'esbuild'
import { configDefaults, defineConfig } from 'vitest/config'

const src = (path: string) => fileURLToPath(new URL(`./src/${path}`, import.meta.url))

// Tests named *.workerd.test.ts run inside workerd (the Workers runtime), everything else in Node.
const workerdTests = 'test/**/*.workerd.test.ts'
// The same date as wrangler.toml: the runtime behaviour the example is deployed with.
const compatibilityDate = '2026-04-26'

/** The second Worker of the Durable Objects tests, bundled (Miniflare's extra Workers are not run through Vite). */
function secondWorker(): string {
  const { outputFiles } = buildSync({
    entryPoints: [fileURLToPath(new URL('./test/support/workerd/second-worker.ts', import.meta.url))],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    external: ['cloudflare:workers'],
    write: false,
  })
  return outputFiles[0]?.text ?? ''
}

export default defineConfig({
  resolve: {
    alias: [
      { find: /^edge-session$/, replacement: src('index.ts') },
      { find: /^edge-session\/(.*)$/, replacement: src('$1.ts') },
    ],
  },
  test: {
    testTimeout: 20_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'node',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, workerdTests],
        },
      },
      {
        extends: true,
        plugins: [
          cloudflareTest(() => ({
            // Exports the Durable Object class the bindings name: a class must come from the main Worker.
            main: './test/support/workerd/main.ts',
            miniflare: {
              compatibilityDate,
              kvNamespaces: ['SESSIONS'],
              d1Databases: ['DB'],
              // SQLite-backed, as wrangler.toml's `new_sqlite_classes` migration declares it.
              durableObjects: { SESSION_OBJECTS: { className: 'SessionObject', useSQLite: true } },
              serviceBindings: { SECOND: 'second' },
              // Another Worker bound to the same class, in the same Miniflare (two Miniflares on one persist
              // folder are not one object: SQLite refuses the second writer).
              workers: [
                {
                  name: 'second',
                  modules: true,
                  script: secondWorker(),
                  compatibilityDate,
                  durableObjects: {
                    SESSION_OBJECTS: {
                      className: 'SessionObject',
                      scriptName: 'vitest-pool-workers-runner-workerd',
                      useSQLite: true,
                    },
                  },
                },
              ],
            },
          })),
        ],
        test: {
          name: 'workerd',
          include: [workerdTests],
        },
      },
    ],
  },
})
