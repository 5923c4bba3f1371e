/**
 * @module `npm test`'s prerequisite step (scripts/prerequisites.mjs), run on a PATH of stand-ins: it finds what
 * is missing, names the exact command to install it, and runs apt-get only when something is missing. A stand-in
 * apt-get records its calls (and "installs" by creating the program), so nothing is really installed.
 */

import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'

const script = new URL('../../scripts/prerequisites.mjs', import.meta.url).pathname
const ALL = ['redis-server', 'chromium', 'mariadbd', 'initdb', 'postgres']
// The one line the script tells a person to run: as root no sudo, else sudo.
const sudo = process.getuid?.() === 0 ? '' : 'sudo '

let bin = ''

afterEach(() => {
  if (bin) rmSync(bin, { recursive: true, force: true })
  bin = ''
})

function executable(name: string, body: string) {
  const path = join(bin, name)
  writeFileSync(path, `#!/bin/sh\n${body}\n`)
  chmodSync(path, 0o755)
}

/** A PATH of one directory holding stand-ins for `programs`, and apt-get (and sudo) when asked. */
function machine(programs: string[], { apt = false, aptInstalls = true } = {}) {
  bin = mkdtempSync(join(tmpdir(), 'edge-session-prereq-'))
  for (const program of programs) executable(program, 'exit 0')
  if (apt) {
    // Records each call with the frontend it was given; `install` of redis-server creates the program.
    const redis = join(bin, 'redis-server')
    const install = aptInstalls ? `printf '#!/bin/sh\\n' > "${redis}"; /bin/chmod +x "${redis}"` : ':'
    executable(
      'apt-get',
      [
        `echo "$DEBIAN_FRONTEND $*" >> "${join(bin, 'apt-calls')}"`,
        `if [ "$1" = install ]; then ${install}; fi`,
      ].join('\n'),
    )
    // Passwordless sudo, for a run that is not root: runs what it is given.
    executable('sudo', 'if [ "$1" = -n ]; then shift; fi\n"$@"')
  }
}

function run(...args: string[]) {
  const result = spawnSync(process.execPath, [script, '--path-only', '--no-bench', ...args], {
    env: { PATH: bin, HOME: bin },
    encoding: 'utf8',
  })
  return { code: result.status, output: result.stdout + result.stderr }
}

const aptCalls = () =>
  existsSync(join(bin, 'apt-calls')) ? readFileSync(join(bin, 'apt-calls'), 'utf8') : ''

describe('npm test prerequisites', () => {
  it('passes at once when every program is there, without calling apt-get', () => {
    machine(ALL, { apt: true })
    const { code, output } = run()
    expect(code).toBe(0)
    expect(output).toContain('Redis, Chromium, MariaDB, PostgreSQL found')
    expect(aptCalls()).toBe('')
  })

  it('stops where it cannot install, naming the exact command', () => {
    machine(ALL.filter((p) => p !== 'redis-server'))
    const { code, output } = run()
    expect(code).toBe(1)
    expect(output).toContain('npm test needs Redis (redis-server)')
    expect(output).toContain(
      `${sudo}apt-get update && ${sudo}apt-get install -y --no-install-recommends redis-server`,
    )
  })

  it('names every missing package in one command, PostgreSQL needing both its programs', () => {
    machine(['redis-server', 'mariadbd', 'initdb'])
    const { code, output } = run()
    expect(code).toBe(1)
    expect(output).toContain('Chromium (chromium), PostgreSQL (initdb, postgres)')
    expect(output).toContain(`apt-get install -y --no-install-recommends chromium postgresql\n`)
  })

  it('in a dry run, says what apt-get would run and runs nothing', () => {
    machine(['chromium', 'initdb', 'postgres'], { apt: true })
    const { code, output } = run('--dry-run')
    expect(code).toBe(0)
    expect(output).toContain(
      `would run\n  ${sudo}apt-get update -qq\n  ${sudo}apt-get install -y -qq --no-install-recommends redis-server mariadb-server\n`,
    )
    expect(aptCalls()).toBe('')
  })

  it('installs what is missing with apt-get: one update, then a non-interactive install', () => {
    machine(
      ALL.filter((p) => p !== 'redis-server'),
      { apt: true },
    )
    const { code, output } = run()
    expect(output).toContain('installing redis-server with apt-get')
    expect(code).toBe(0)
    expect(aptCalls()).toBe(
      'noninteractive update -qq\nnoninteractive install -y -qq --no-install-recommends redis-server\n',
    )
    expect(existsSync(join(bin, 'redis-server'))).toBe(true)
  })

  it('fails, naming the command, when apt-get leaves the program missing', () => {
    machine(
      ALL.filter((p) => p !== 'redis-server'),
      { apt: true, aptInstalls: false },
    )
    const { code, output } = run()
    expect(code).toBe(1)
    expect(output).toContain(`${sudo}apt-get install -y --no-install-recommends redis-server`)
  })
})
