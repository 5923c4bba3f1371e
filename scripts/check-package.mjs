#!/usr/bin/env node
// The package as npm would publish it: only dist, README.md, LICENSE and package.json, and every export built.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'

const [pack] = JSON.parse(
  execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { encoding: 'utf8' }),
)
const files = pack.files.map((file) => file.path)
const stray = files.filter((path) => !/^(dist\/.+\.(js|d\.ts)|README\.md|LICENSE|package\.json)$/.test(path))
const problems = stray.map((path) => `npm pack would publish ${path}`)

const pkg = JSON.parse(readFileSync('package.json', 'utf8'))
for (const [subpath, target] of Object.entries(pkg.exports)) {
  if (typeof target === 'string') continue
  for (const path of Object.values(target)) {
    if (!existsSync(path))
      problems.push(`exports["${subpath}"] points at ${path}, which the build did not produce`)
    else if (!files.includes(path.replace(/^\.\//, ''))) problems.push(`${path} would not be published`)
  }
}
for (const required of ['README.md', 'LICENSE', 'package.json']) {
  if (!files.includes(required)) problems.push(`npm pack would leave out ${required}`)
}

if (problems.length > 0) {
  console.error(problems.join('\n'))
  process.exit(1)
}
console.log(
  `check-package: ${files.length} files, ${(pack.size / 1024).toFixed(1)} KiB packed, only dist and docs`,
)
