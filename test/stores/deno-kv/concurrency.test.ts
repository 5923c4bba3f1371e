/**
 * @module The concurrency suite on the Deno KV store, run where that store lives: `deno test` (the deno binary
 * from devDependencies) on test/stores/deno-kv/concurrency.deno.ts, with its own lock file.
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { CONCURRENCY_TESTS } from '../../shared/concurrency.ts'

const root = fileURLToPath(new URL('../../../', import.meta.url))

function denoTest(file: string): Promise<{ code: number; output: string }> {
  // The repository's package.json is for Node: test/support/deno/deno.json's import map resolves modules under Deno.
  const env = { ...process.env, NO_COLOR: '1', DENO_NO_PACKAGE_JSON: '1', DENO_NO_UPDATE_CHECK: '1' }
  const args = ['test', '--frozen', '--lock=test/stores/deno-kv/concurrency.deno.lock', '--allow-env']
  args.push('--config', 'test/support/deno/deno.json', file)
  return new Promise((resolve, reject) => {
    execFile(
      join(root, 'node_modules/.bin/deno'),
      args,
      { cwd: root, env, maxBuffer: 16 << 20 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') return reject(error)
        resolve({ code: error ? Number(error.code) : 0, output: `${stdout}\n${stderr}` })
      },
    )
  })
}

describe('concurrency: deno-kv, under Deno', () => {
  it('passes every test of the concurrency suite', async () => {
    const { code, output } = await denoTest('test/stores/deno-kv/concurrency.deno.ts')
    const summary = output.match(/(?:ok|FAILED) \| (\d+) passed \| (\d+) failed/)
    expect({ code, passed: Number(summary?.[1]), failed: Number(summary?.[2]) }, output).toEqual({
      code: 0,
      passed: CONCURRENCY_TESTS,
      failed: 0,
    })
    expect(output).toMatch(
      /concurrency: deno-kv > loses nothing when 100 concurrent requests through the Hono/,
    )
    expect(output).not.toMatch(/ignored|filtered/i)
  }, 180_000)
})
