/**
 * @module What the shared test modules import from `vitest`, for Deno: `describe` and `it` on `Deno.test`, and
 * vitest's own `expect` (its matchers are the `@vitest/expect` chai plugin), so the same modules run unchanged.
 *
 * Only what those modules use is here; anything else fails to import, loudly, rather than passing unnoticed.
 */

import {
  type ExpectStatic,
  getState,
  JestAsymmetricMatchers,
  JestChaiExpect,
  JestExtend,
  setState,
} from '@vitest/expect'
import * as chai from 'chai'

chai.use(JestExtend)
chai.use(JestChaiExpect)
chai.use(JestAsymmetricMatchers)

/** vitest's `expect` as its runner builds it, less the parts tied to that runner (soft, poll, snapshots). */
export const expect: ExpectStatic = ((value: unknown, message?: string) => {
  const { assertionCalls } = getState(expect)
  setState({ assertionCalls: assertionCalls + 1 }, expect)
  return chai.expect(value, message)
}) as ExpectStatic
Object.assign(expect, chai.expect)
setState({ assertionCalls: 0, isExpectingAssertions: false, expectedAssertionsNumber: null }, expect)

/** vitest's default per-test timeout in this repository (vitest.config.ts). */
const DEFAULT_TIMEOUT = 20_000

const names: string[] = []
/** While `collectTests` runs: the full names of the tests registered, instead of registering them. */
let collected: string[] | null = null

/**
 * The full names of the tests `register` would register, without registering them (nothing runs): what a shared
 * suite holds for given options, so a runner can check that all of them ran.
 */
export function collectTests(register: () => void): string[] {
  const outer = collected
  const own: string[] = []
  collected = own
  try {
    register()
  } finally {
    collected = outer
  }
  return own
}

/** Groups tests: their names are prefixed with the group's, as vitest reports them. */
export function describe(name: string, body: () => void): void {
  names.push(name)
  try {
    body()
  } finally {
    names.pop()
  }
}

/** One test, registered with `Deno.test`. A test that outlives `timeout` fails. */
export function it(name: string, body: () => unknown, timeout = DEFAULT_TIMEOUT): void {
  if (collected) {
    collected.push([...names, name].join(' > '))
    return
  }
  Deno.test([...names, name].join(' > '), async () => {
    let timer: ReturnType<typeof setTimeout> | undefined
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Test timed out in ${timeout} ms`)), timeout)
    })
    try {
      await Promise.race([body(), expired])
    } finally {
      clearTimeout(timer)
    }
  })
}

export const test = it
