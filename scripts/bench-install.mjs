#!/usr/bin/env node
// The benchmark is a package of its own (bench/package.json): the peers it compares edge-session with, and its
// load generator, stay out of the library's install. This installs them on first use, and does nothing (no npm
// call) when bench/node_modules already holds the versions bench/package.json pins.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const benchDir = fileURLToPath(new URL('../bench/', import.meta.url))

/** The bench dependencies missing from bench/node_modules, or installed at another version than pinned. */
export function missingBenchDependencies(dir = benchDir) {
  const { dependencies = {} } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  return Object.entries(dependencies).flatMap(([name, version]) => {
    const manifest = join(dir, 'node_modules', name, 'package.json')
    if (!existsSync(manifest)) return [`${name}@${version}`]
    return JSON.parse(readFileSync(manifest, 'utf8')).version === version ? [] : [`${name}@${version}`]
  })
}

/** Installs the bench's dependencies from bench/package-lock.json when any is missing; throws if npm fails. */
export function ensureBenchDependencies({ log = console.error } = {}) {
  const missing = missingBenchDependencies()
  if (missing.length === 0) return false
  log(`bench: installing its own dependencies (${missing.join(', ')}) in bench/node_modules`)
  // iron-session 9 declares Node >= 22.13 (npm warns EBADENGINE on Node 20); the bench runs it on Node 20.
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
  const result = spawnSync(npm, ['install', '--no-audit', '--no-fund'], { cwd: benchDir, stdio: 'inherit' })
  if (result.status !== 0) {
    throw new Error(
      `bench: "npm install" in bench/ failed (${result.error?.message ?? `exit ${result.status}`})`,
    )
  }
  return true
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    ensureBenchDependencies()
  } catch (error) {
    console.error(error instanceof Error ? error.message : error)
    process.exit(1)
  }
}
