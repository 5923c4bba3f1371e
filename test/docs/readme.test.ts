/**
 * @module The README's TypeScript runs as written: every ```ts block is a whole file, type-checked against the
 * package as npm would publish it (a fresh build, packed) in an app of its own, strict, under
 * `moduleResolution` bundler and nodenext; the Node quick start is started for real. Peer dependencies come
 * from the repository's node_modules, so nothing is downloaded.
 *
 * Markers, an HTML comment on the line before a block (blank lines between are fine):
 * `<!-- docs-test: skip (why) -->` leaves a fragment out (an API summary), `<!-- docs-test: run (why) -->` also
 * starts the block on Node (PORT and SESSION_SECRET set) and expects it to print `listening on`, and
 * `<!-- docs-test: workers (why) -->` checks a Worker's block apart, with `@cloudflare/workers-types` instead of
 * Node's types and the DOM.
 */

import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CookieJar } from '../support/jar.ts'
import { startLocalUpstash } from '../support/local-upstash.ts'
import { freePort, spawnTracked, type TrackedProcess, waitFor } from '../support/processes.ts'

const root = fileURLToPath(new URL('../../', import.meta.url))
const readme = readFileSync(join(root, 'README.md'), 'utf8')

interface Block {
  /** README line of the block's first code line (1-based). */
  line: number
  code: string
  mode: 'check' | 'run' | 'skip' | 'workers'
  reason?: string
}

/**
 * Every fenced block whose language is TypeScript, with its marker. Throws on a marker it does not know, a
 * marker with no reason, or a marker followed by no TypeScript block, so nothing is left out by accident.
 */
function typescriptBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n')
  const blocks: Block[] = []
  let marker: { mode: 'run' | 'skip' | 'workers'; reason: string; line: number } | undefined
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? ''
    const comment = /^<!--\s*docs-test:\s*(.*?)\s*-->$/.exec(line.trim())
    if (comment) {
      const parsed = /^(run|skip|workers)\s+\((.+)\)$/.exec(comment[1] ?? '')
      if (!parsed)
        throw new Error(
          `README.md:${i + 1}: expected <!-- docs-test: skip (why) -->, run (why) or workers (why)`,
        )
      marker = { mode: parsed[1] as 'run' | 'skip' | 'workers', reason: parsed[2] ?? '', line: i + 1 }
      continue
    }
    const fence = /^(`{3,})\s*([\w-]*)/.exec(line)
    if (fence) {
      const end = lines.findIndex((l, j) => j > i && l.startsWith(fence[1] ?? '```'))
      if (end < 0) throw new Error(`README.md:${i + 1}: unclosed code block`)
      const language = (fence[2] ?? '').toLowerCase()
      if (['ts', 'typescript', 'tsx', 'mts'].includes(language)) {
        const code = lines.slice(i + 1, end).join('\n')
        blocks.push({ line: i + 2, code, mode: marker?.mode ?? 'check', reason: marker?.reason })
      } else if (marker) {
        throw new Error(`README.md:${marker.line}: a docs-test marker before a ${language || 'plain'} block`)
      }
      marker = undefined
      i = end
      continue
    }
    if (marker && line.trim() !== '') {
      throw new Error(`README.md:${marker.line}: a docs-test marker not followed by a TypeScript block`)
    }
  }
  if (marker) throw new Error(`README.md:${marker.line}: a docs-test marker at the end of the file`)
  return blocks
}

const blocks = typescriptBlocks(readme)
const checked = blocks.filter((block) => block.mode === 'check' || block.mode === 'run')
/** Blocks of a Worker: checked apart, with `@cloudflare/workers-types` instead of Node's types and the DOM. */
const workers = blocks.filter((block) => block.mode === 'workers')
const fileOf = (block: Block) => `readme-line-${block.line}.ts`

let dir = ''
let app = ''

/** Runs the TypeScript compiler of the repository on the app with `tsconfig`, and returns what it printed. */
function tsc(
  tsconfig: Record<string, unknown>,
  files: readonly string[],
  name = `tsconfig.${String(tsconfig.moduleResolution)}.json`,
): { code: number; output: string } {
  const compilerOptions = {
    strict: true,
    noUncheckedIndexedAccess: true,
    target: 'ES2022',
    // Hono's types name DOM event types (its WebSocket helper), as most Hono apps' settings provide.
    lib: ['ES2023', 'DOM', 'DOM.Iterable'],
    types: ['node'],
    // The published declarations are checked too, as in a project that does not skip them.
    skipLibCheck: false,
    noEmit: true,
    // Each block is a file of its own, even one with no import.
    moduleDetection: 'force',
    ...tsconfig,
  }
  writeFileSync(join(app, name), JSON.stringify({ compilerOptions, files }, null, 2))
  const result = spawnSync(
    process.execPath,
    [join(root, 'node_modules/typescript/bin/tsc'), '-p', name, '--pretty', 'false'],
    { cwd: app, encoding: 'utf8' },
  )
  // Errors point at README lines: `readme-line-46.ts(3,5)` is README line 48.
  const output = (result.stdout + result.stderr).replace(
    /readme-line-(\d+)\.ts\((\d+),(\d+)\)/g,
    (_, start: string, line: string, column: string) =>
      `README.md:${Number(start) + Number(line) - 1}:${column}`,
  )
  return { code: result.status ?? 1, output }
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'edge-session-readme-'))
  app = join(dir, 'app')
  // The package as published: a fresh build, packed, unpacked where an install would put it.
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'pipe' })
  const [pack] = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], {
      cwd: root,
      encoding: 'utf8',
    }),
  ) as [{ filename: string }]
  const installed = join(app, 'node_modules/edge-session')
  mkdirSync(installed, { recursive: true })
  execFileSync('tar', ['-xzf', join(dir, pack.filename), '-C', installed, '--strip-components=1'])
  // What the quick start installs, and the package's own dependencies, from the repository: no network.
  const pkg = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>
    peerDependencies?: Record<string, string>
  }
  const links = [
    ...Object.keys(pkg.dependencies ?? {}),
    ...Object.keys(pkg.peerDependencies ?? {}),
    '@hono/node-server',
    '@types/node',
    '@cloudflare/workers-types',
    'tsx',
  ]
  for (const name of links) {
    const target = join(app, 'node_modules', name)
    mkdirSync(dirname(target), { recursive: true })
    symlinkSync(join(root, 'node_modules', name), target, 'dir')
  }
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'readme-app', private: true, type: 'module' }),
  )
  for (const block of [...checked, ...workers]) writeFileSync(join(app, fileOf(block)), `${block.code}\n`)
  // Snippets for Deno call its global; the app is checked with Node's types, so Deno's one entry point the
  // README uses is declared here, typed as the package's own `DenoKv` (what `Deno.openKv()` gives).
  writeFileSync(
    join(app, 'deno-globals.d.ts'),
    "declare namespace Deno {\n  function openKv(path?: string): Promise<import('edge-session/stores/deno-kv').DenoKv>\n}\n",
  )
  console.log(
    `README.md: ${blocks.length} TypeScript blocks, ${checked.length} type-checked, ` +
      `${workers.length} type-checked as Workers, ${blocks.length - checked.length - workers.length} skipped (${blocks
        .filter((block) => block.mode === 'skip')
        .map((block) => `line ${block.line}: ${block.reason}`)
        .join('; ')})`,
  )
}, 120_000)

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe('README.md TypeScript', () => {
  it('has every TypeScript block either checked or explicitly skipped', () => {
    const fences = readme.match(/^```\s*(ts|typescript|tsx|mts)\b/gim) ?? []
    expect(blocks).toHaveLength(fences.length)
    expect(checked.length).toBeGreaterThanOrEqual(2)
    expect(blocks.filter((block) => block.mode === 'run')).not.toHaveLength(0)
  })

  it('type-checks against the packed package with moduleResolution bundler', { timeout: 120_000 }, () => {
    const { code, output } = tsc({ module: 'ESNext', moduleResolution: 'bundler' }, [
      ...checked.map(fileOf),
      'deno-globals.d.ts',
    ])
    expect(output).toBe('')
    expect(code).toBe(0)
  })

  it('type-checks against the packed package with moduleResolution nodenext', { timeout: 120_000 }, () => {
    const { code, output } = tsc({ module: 'NodeNext', moduleResolution: 'nodenext' }, [
      ...checked.map(fileOf),
      'deno-globals.d.ts',
    ])
    expect(output).toBe('')
    expect(code).toBe(0)
  })

  it('type-checks the Workers blocks against the packed package with @cloudflare/workers-types', {
    timeout: 120_000,
  }, () => {
    expect(workers).not.toHaveLength(0)
    const { code, output } = tsc(
      {
        module: 'ESNext',
        moduleResolution: 'bundler',
        lib: ['ES2023'],
        types: ['@cloudflare/workers-types'],
      },
      workers.map(fileOf),
      'tsconfig.workers.json',
    )
    expect(output).toBe('')
    expect(code).toBe(0)
  })

  it('does not resolve the subpath exports under the old moduleResolution node10, as the README says', {
    timeout: 120_000,
  }, () => {
    const hono = checked.find((block) => block.code.includes("from 'edge-session/hono'"))
    if (!hono) throw new Error('no README block imports edge-session/hono')
    const { code, output } = tsc({ module: 'ESNext', moduleResolution: 'node10', skipLibCheck: true }, [
      fileOf(hono),
    ])
    expect(code).not.toBe(0)
    expect(output).toContain("Cannot find module 'edge-session/hono'")
  })
})

describe('the Node quick start, run as written', () => {
  const block = blocks.find((b) => b.mode === 'run')
  let server: TrackedProcess | undefined
  let base = ''

  afterAll(async () => {
    await server?.stop()
  })

  function start(env: Record<string, string | undefined>) {
    if (!block) throw new Error('no README block is marked docs-test: run')
    return spawnTracked(process.execPath, ['--import', 'tsx', fileOf(block)], {
      cwd: app,
      env: { ...process.env, SESSION_SECRET: undefined, OLD_SESSION_SECRET: undefined, ...env },
    })
  }

  it('stops at once without SESSION_SECRET, saying how to make one', async () => {
    const alone = start({ PORT: String(await freePort()) })
    const end = await alone.exited
    expect(end.code).toBe(1)
    expect(alone.output()).toContain('Set SESSION_SECRET')
    expect(alone.output()).toContain('openssl rand -base64 32')
  })

  it('serves a session cookie, logs in with a new one and shows the flash once', async () => {
    const port = await freePort()
    base = `http://localhost:${port}`
    server = start({ PORT: String(port), SESSION_SECRET: 'readme-test-secret-0123456789abcdefghijkl' })
    await waitFor(/listening on/, {
      what: 'the README quick start to listen',
      timeoutMs: 30_000,
      process: server,
    })

    const jar = new CookieJar()
    const first = await fetch(jar.request(`${base}/`))
    expect(first.headers.getSetCookie()).toEqual([
      expect.stringMatching(/^sid=[^;]+; Max-Age=1800; Path=\/; HttpOnly; Secure; SameSite=Lax$/),
    ])
    jar.update(first)
    expect(await first.text()).toBe('\nvisits: 1, logged in: nobody\n')
    const before = jar.get('sid')

    const login = await fetch(jar.request(`${base}/login`, { method: 'POST', redirect: 'manual' }))
    expect(login.status).toBe(303)
    jar.update(login)
    expect(jar.get('sid')).not.toBe(before)

    expect(await (await fetch(jar.request(`${base}/`))).text()).toBe(
      'Welcome back!\nvisits: 2, logged in: u_123\n',
    )
    expect(await (await fetch(jar.request(`${base}/`))).text()).toBe('\nvisits: 3, logged in: u_123\n')

    const logout = await fetch(jar.request(`${base}/logout`, { method: 'POST', redirect: 'manual' }))
    expect(logout.headers.getSetCookie()).toEqual([expect.stringMatching(/^sid=; Max-Age=0/)])
  })
})

describe('the any-runtime module, run as written', () => {
  it('answers with a session kept in Upstash (a local endpoint), counting on with the cookie', async () => {
    const block = checked.find((b) => b.code.includes('export default {') && b.code.includes('upstashStore'))
    if (!block) throw new Error('no README block exports a fetch handler on the Upstash store')
    // What Bun, Deno or Workers do with the module: call its default export's fetch with each Request.
    const driver = join(app, 'drive-any-runtime.ts')
    writeFileSync(
      driver,
      [
        `import handler from './${fileOf(block)}'`,
        "const first = await handler.fetch(new Request('http://localhost/'))",
        "const cookie = (first.headers.get('set-cookie') ?? '').split(';')[0] ?? ''",
        "const second = await handler.fetch(new Request('http://localhost/', { headers: { cookie } }))",
        'console.log(JSON.stringify([await first.text(), cookie, await second.text()]))',
      ].join('\n'),
    )
    const upstash = await startLocalUpstash()
    try {
      const run = spawnTracked(process.execPath, ['--import', 'tsx', driver], {
        cwd: app,
        env: {
          ...process.env,
          SESSION_SECRET: 'readme-test-secret-0123456789abcdefghijkl',
          OLD_SESSION_SECRET: undefined,
          UPSTASH_REDIS_REST_URL: upstash.endpoint.url,
          UPSTASH_REDIS_REST_TOKEN: upstash.endpoint.token,
        },
      })
      const end = await run.exited
      expect(end.code, run.output()).toBe(0)
      const [first, cookie, second] = JSON.parse(run.output().trim().split('\n').at(-1) ?? '') as string[]
      expect(first).toBe('visits: 1')
      expect(cookie).toMatch(/^sid=[\w-]+\.[\w-]+$/)
      expect(second).toBe('visits: 2')
    } finally {
      await upstash.stop()
    }
  })
})
