/**
 * @module Prints, as a JSON array, the full names of the store conformance tests registered for the options given
 * as JSON in the first argument (`name`, `kind`, `realTimeExpiry`, `concurrentPatches`): what a Deno run of a
 * store's suite must have passed. Run by test/stores/deno-kv/deno-kv.test.ts with test/support/deno/deno.json.
 */

import { collectTests } from 'vitest'
import { type ConformanceOptions, describeStoreConformance } from '../../shared/conformance.ts'

const options = JSON.parse(Deno.args[0] ?? '{}') as Omit<ConformanceOptions, 'createStore'>
const names = collectTests(() =>
  describeStoreConformance({
    ...options,
    createStore: () => {
      throw new Error('only listing the tests')
    },
  }),
)
console.log(JSON.stringify(names))
