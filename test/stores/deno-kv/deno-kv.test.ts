/**
 * @module The Deno KV store, run where it lives: `deno test --unstable-kv` on test/stores/deno-kv/deno-kv.deno.ts (the shared
 * conformance suite plus Deno KV's own tests), with the deno binary from devDependencies, checked against the
 * suite's own list of tests. Also checks that the Deno shim of `vitest` fails what it should, and that the Deno
 * import maps follow package.json.
 */

import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const denoBin = join(root, 'node_modules/.bin/deno')

/**
 * What Deno KV must pass of the store conformance suite: the tests for a server store whose own expiry can be
 * watched in real time and whose concurrent patches merge. The names come from test/shared/conformance.ts itself
 * (list-conformance.deno.ts beside this file), so a test added to the suite is expected here without a count kept by hand.
 */
const CONFORMANCE = {
  name: 'deno-kv',
  kind: 'server',
  realTimeExpiry: true,
  concurrentPatches: 'merged',
} as const
/** Tests in test/support/deno/must-fail.deno.ts, every one of which must fail. */
const MUST_FAIL_TESTS = 7

interface DenoRun {
  code: number
  output: string
  passed: number
  failed: number
}

/** Runs the deno binary from devDependencies in the repository's root. */
function deno(args: string[]): Promise<{ code: number; output: string }> {
  // The repository's package.json is for Node: the import maps of the deno.json files resolve modules under Deno.
  const env = { ...process.env, NO_COLOR: '1', DENO_NO_PACKAGE_JSON: '1', DENO_NO_UPDATE_CHECK: '1' }
  return new Promise((resolve, reject) => {
    execFile(denoBin, args, { cwd: root, env, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') return reject(error)
      resolve({ code: error ? Number(error.code) : 0, output: `${stdout}\n${stderr}` })
    })
  })
}

/** `deno test` on one file, with test/support/deno/deno.json (its import map sends `vitest` to the shim). */
async function denoTest(file: string): Promise<DenoRun> {
  const run = await deno(['test', '--frozen', '--allow-env', '--config', 'test/support/deno/deno.json', file])
  const summary = run.output.match(/(?:ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/)
  return { ...run, passed: Number(summary?.[1] ?? Number.NaN), failed: Number(summary?.[2] ?? Number.NaN) }
}

/** The names of the tests a `deno test` run reports as passed, one line each: `<name> ... ok (12ms)`. */
function passedNames(output: string): string[] {
  return [...output.matchAll(/^(.+) \.\.\. ok \(/gm)].map((match) => match[1] as string)
}

/** The conformance tests registered for `options`, listed by test/stores/deno-kv/list-conformance.deno.ts. */
async function conformanceTests(options: object): Promise<string[]> {
  const args = ['run', '--frozen', '--allow-env', '--config', 'test/support/deno/deno.json']
  const { code, output } = await deno([
    ...args,
    'test/stores/deno-kv/list-conformance.deno.ts',
    JSON.stringify(options),
  ])
  expect(code, output).toBe(0)
  const line = output.split('\n').find((text) => text.startsWith('['))
  return JSON.parse(line ?? '[]') as string[]
}

describe('denoKvStore under Deno', () => {
  it('passes every test of the store conformance suite, and its own tests', async () => {
    const [expected, run] = await Promise.all([
      conformanceTests(CONFORMANCE),
      denoTest('test/stores/deno-kv/deno-kv.deno.ts'),
    ])
    const passed = passedNames(run.output)
    expect({ code: run.code, failed: run.failed, passed: run.passed }, run.output).toEqual({
      code: 0,
      failed: 0,
      passed: passed.length,
    })
    expect(run.output).not.toMatch(/ignored|filtered/i)
    const prefix = `store conformance: ${CONFORMANCE.name} > `
    // The list is the suite's own: the server tests, the real-time expiry test and the merging of concurrent
    // patches are in it (a list that lost them would let a run that skipped them pass).
    expect(expected).toEqual(
      expect.arrayContaining([
        `${prefix}merges concurrent changes to different keys of one session`,
        `${prefix}forgets a record once its TTL has passed, by the store itself`,
        `${prefix}keeps a flash set by one request when another, loaded before it, changes another key or touches`,
        `${prefix}round-trips every string key on the patch path, and all() holds exactly the keys set`,
      ]),
    )
    expect(passed.filter((name) => name.startsWith(prefix)).sort()).toEqual([...expected].sort())
    // Deno KV's own tests ran too.
    expect(passed.filter((name) => name.startsWith('denoKvStore > ')).length).toBeGreaterThan(0)
  }, 180_000)

  it('runs the suite through a vitest shim that fails every failing assertion', async () => {
    const run = await denoTest('test/support/deno/must-fail.deno.ts')
    expect({ code: run.code, passed: run.passed, failed: run.failed }, run.output).toEqual({
      code: 1,
      passed: 0,
      failed: MUST_FAIL_TESTS,
    })
  }, 180_000)
})

describe('the Deno configurations', () => {
  it('type-check the Deno example with its own deno.json', async () => {
    const { code, output } = await deno([
      'check',
      '--config',
      'examples/deno/deno.json',
      'examples/deno/main.ts',
    ])
    expect(code, output).toBe(0)
  }, 180_000)

  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    exports: Record<string, unknown>
  }
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { version: string }>
  }
  const subpaths = Object.keys(pkg.exports).filter((subpath) => subpath !== './package.json')

  for (const config of ['test/support/deno/deno.json', 'examples/deno/deno.json']) {
    it(`${config} sends every export of the package to its source, and npm packages to the locked versions`, () => {
      const imports = (
        JSON.parse(readFileSync(join(root, config), 'utf8')) as { imports: Record<string, string> }
      ).imports
      const base = config
        .split('/')
        .slice(0, -1)
        .map(() => '..')
        .join('/')
      for (const subpath of subpaths) {
        const specifier = subpath === '.' ? 'edge-session' : `edge-session/${subpath.slice(2)}`
        const source = subpath === '.' ? 'index' : subpath.slice(2)
        expect(imports[specifier], specifier).toBe(`${base}/src/${source}.ts`)
      }
      for (const [specifier, target] of Object.entries(imports)) {
        const npm = target.match(/^npm:\/?(@?[^@]+)@([^/]+)\/?$/)
        if (!npm) continue
        const [, name = '', version] = npm
        const locked = lock.packages[`node_modules/${name}`]?.version
        if (locked) expect(version, specifier).toBe(locked)
      }
    })
  }
})
