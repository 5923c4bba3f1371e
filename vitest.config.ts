import { fileURLToPath } from 'node:url'
import { cloudflareTest } from '@cloudflare/vitest-pool-workers'
import { configDefaults, defineConfig } from 'vitest/config'

const src = (path: string) => fileURLToPath(new URL(`./src/${path}`, import.meta.url))

// Tests named *.workerd.test.ts run inside workerd (the Workers runtime), everything else in Node.
const workerdTests = 'test/**/*.workerd.test.ts'

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
          cloudflareTest({
            miniflare: {
              // The same date as wrangler.toml: the runtime behaviour the example is deployed with.
              compatibilityDate: '2026-04-26',
              kvNamespaces: ['SESSIONS'],
              d1Databases: ['DB'],
            },
          }),
        ],
        test: {
          name: 'workerd',
          include: [workerdTests],
        },
      },
    ],
  },
})
