#!/usr/bin/env node
// `npm test`'s first step (the `pretest` script): the suite starts real servers and a real browser, from Debian
// packages. This finds the ones missing and installs them with apt-get where it may (as root, or with
// passwordless sudo); otherwise it stops at once and names the command to run. When everything is present it
// only looks at a few paths: no apt-get, no npm call. It also installs the benchmark's own dependencies
// (bench/package.json) on first use, since the bench smoke test runs every subject.
//
//   node scripts/prerequisites.mjs [--dry-run] [--path-only] [--no-bench]
//
// --dry-run    say what would be installed, install nothing (exit 1 when it could not install it either)
// --path-only  look for the programs on PATH only, not also in /usr/sbin and /usr/lib/postgresql/*/bin
// --no-bench   leave the benchmark's dependencies alone
import { spawnSync } from 'node:child_process'
import { accessSync, constants, readdirSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { ensureBenchDependencies, missingBenchDependencies } from './bench-install.mjs'

/** What the tests run, the Debian package that brings it, and where that package puts it. */
const PREREQUISITES = [
  { name: 'Redis', pkg: 'redis-server', programs: ['redis-server'], dirs: [] },
  // The browser tests launch /usr/bin/chromium through playwright-core: never a downloaded browser build.
  { name: 'Chromium', pkg: 'chromium', programs: ['chromium'], dirs: [] },
  // Debian puts server daemons in /usr/sbin, which an ordinary user's PATH may lack.
  { name: 'MariaDB', pkg: 'mariadb-server', programs: ['mariadbd'], dirs: ['/usr/sbin', '/sbin'] },
  // Debian keeps the PostgreSQL server programs per major version, off PATH.
  { name: 'PostgreSQL', pkg: 'postgresql', programs: ['initdb', 'postgres'], dirs: postgresDirs() },
]

function postgresDirs() {
  try {
    return readdirSync('/usr/lib/postgresql').map((version) => join('/usr/lib/postgresql', version, 'bin'))
  } catch {
    return []
  }
}

function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

function pathDirs() {
  return (process.env.PATH ?? '').split(delimiter).filter(Boolean)
}

/** The first executable `program` in `dirs`, or undefined. */
function find(program, dirs) {
  for (const dir of dirs) {
    const path = join(dir, program)
    if (isExecutable(path)) return path
  }
  return undefined
}

/** The prerequisites some of whose programs are found nowhere. */
export function missingPrerequisites({ pathOnly = false } = {}) {
  return PREREQUISITES.filter(({ programs, dirs }) => {
    const searched = pathOnly ? pathDirs() : [...pathDirs(), ...dirs]
    return programs.some((program) => !find(program, searched))
  })
}

/** How this process may run apt-get: 'root', 'sudo' (passwordless), or null when it may not. */
function aptAccess() {
  if (process.platform !== 'linux' || !find('apt-get', pathDirs())) return null
  if (process.getuid?.() === 0) return 'root'
  if (!find('sudo', pathDirs())) return null
  // -n: fail at once rather than ask for a password, which a test run cannot answer.
  return spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0 ? 'sudo' : null
}

/** The apt-get commands that install `packages`, each as an argument list. */
function aptCommands(packages, sudo) {
  const prefix = sudo ? ['sudo'] : []
  return [
    [...prefix, 'apt-get', 'update', '-qq'],
    [...prefix, 'apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...packages],
  ]
}

/** One line a person can paste: `sudo apt-get update && sudo apt-get install ...`. */
function manualCommand(packages) {
  const sudo = process.getuid?.() === 0 ? '' : 'sudo '
  return `${sudo}apt-get update && ${sudo}apt-get install -y --no-install-recommends ${packages.join(' ')}`
}

function stop(missing) {
  const packages = missing.map((p) => p.pkg)
  const names = missing.map((p) => `${p.name} (${p.programs.join(', ')})`).join(', ')
  const lines = [`prerequisites: npm test needs ${names}, which this machine lacks.`]
  if (process.platform === 'linux' && find('apt-get', pathDirs())) {
    lines.push('Install them with:', `  ${manualCommand(packages)}`)
  } else {
    lines.push(
      `Install the Debian packages ${packages.join(', ')} or your system's equivalents, so that the programs above`,
      `are found. On Debian or Ubuntu: ${manualCommand(packages)}`,
    )
  }
  lines.push('then run npm test again.')
  console.error(lines.join('\n'))
  return 1
}

export function main(argv = process.argv.slice(2)) {
  const { values } = parseArgs({
    args: argv,
    options: {
      'dry-run': { type: 'boolean', default: false },
      'path-only': { type: 'boolean', default: false },
      'no-bench': { type: 'boolean', default: false },
    },
  })
  const dryRun = values['dry-run']
  const pathOnly = values['path-only']
  const missing = missingPrerequisites({ pathOnly })

  if (missing.length === 0) {
    console.error(`prerequisites: ${PREREQUISITES.map((p) => p.name).join(', ')} found`)
  } else {
    const access = aptAccess()
    if (!access) return stop(missing)
    const commands = aptCommands(
      missing.map((p) => p.pkg),
      access === 'sudo',
    )
    if (dryRun) {
      console.error(`prerequisites: would run\n${commands.map((c) => `  ${c.join(' ')}`).join('\n')}`)
    } else {
      console.error(`prerequisites: installing ${missing.map((p) => p.pkg).join(', ')} with apt-get`)
      for (const [command, ...args] of commands) {
        const result = spawnSync(command, args, {
          stdio: 'inherit',
          env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
        })
        if (result.status !== 0) {
          console.error(`prerequisites: ${[command, ...args].join(' ')} failed`)
          return stop(missing)
        }
      }
      const still = missingPrerequisites({ pathOnly })
      if (still.length > 0) return stop(still)
    }
  }

  if (!values['no-bench']) {
    const bench = missingBenchDependencies()
    if (bench.length > 0 && dryRun) {
      console.error(`prerequisites: would install the benchmark's dependencies: ${bench.join(', ')}`)
    } else if (bench.length > 0) {
      try {
        ensureBenchDependencies()
      } catch (error) {
        console.error(error instanceof Error ? error.message : error)
        return 1
      }
    }
  }
  return 0
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = main()
}
