#!/usr/bin/env node
// Checks the rules a linter cannot: src/ stays runtime-agnostic, and package.json's exports match src/.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

const problems = []
const root = new URL('..', import.meta.url).pathname

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? walk(path) : [path]
  })
}

// 1. No Node-only APIs under src/: the same files run on Workers and Deno.
const forbidden = [
  [/from\s+['"]node:|import\(\s*['"]node:|require\(/, 'a node: import or require()'],
  [/\bBuffer\b/, 'Buffer'],
  [/\bprocess\b/, 'process'],
  [/\b__dirname\b|\b__filename\b/, '__dirname/__filename'],
]
const sources = walk(join(root, 'src')).filter((path) => path.endsWith('.ts'))
for (const path of sources) {
  const lines = readFileSync(path, 'utf8').split('\n')
  lines.forEach((line, i) => {
    const code = line
      .replace(/\/\/.*$/, '')
      .replace(/^\s*\*.*$/, '')
      .replace(/\/\*.*?\*\//g, '')
    for (const [pattern, what] of forbidden) {
      if (pattern.test(code)) problems.push(`${relative(root, path)}:${i + 1} uses ${what}`)
    }
  })
}

// 2. Every export points at a built file of an existing source; every public source is exported.
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const exported = new Set()
for (const [subpath, target] of Object.entries(pkg.exports)) {
  if (subpath === './package.json') continue
  const name = subpath === '.' ? 'index' : subpath.slice(2)
  exported.add(name)
  const expected = { types: `./dist/${name}.d.ts`, default: `./dist/${name}.js` }
  if (JSON.stringify(target) !== JSON.stringify(expected)) {
    problems.push(`exports["${subpath}"] should be ${JSON.stringify(expected)}`)
  }
  try {
    statSync(join(root, 'src', `${name}.ts`))
  } catch {
    problems.push(`exports["${subpath}"] has no source src/${name}.ts`)
  }
}
for (const path of sources) {
  const name = relative(join(root, 'src'), path).replace(/\.ts$/, '')
  const firstLine = readFileSync(path, 'utf8').split('\n', 1)[0]
  const entry = name === 'index' || name === 'hono' || name.startsWith('stores/')
  if (entry && !exported.has(name) && !firstLine.includes('@internal')) {
    problems.push(
      `src/${name}.ts is an entry point missing from package.json exports (or mark its @module @internal)`,
    )
  }
}

if (problems.length > 0) {
  console.error(`check-rules: ${problems.length} problem(s)\n${problems.map((p) => `- ${p}`).join('\n')}`)
  process.exit(1)
}
console.log(`check-rules: ${sources.length} source files and ${exported.size} exports are in order`)
