/** @module The README's "Writing a store" example: the same file as examples/custom-store, and a conformant store. */

import { readFileSync } from 'node:fs'
import { expect, it } from 'vitest'
import { mapStore } from '../../examples/custom-store/map-store.ts'
import { describeStoreConformance } from '../shared/conformance.ts'

it('is printed in the README exactly as the file the suite runs', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  const file = readFileSync(new URL('../../examples/custom-store/map-store.ts', import.meta.url), 'utf8')
  expect(readme).toContain(`\`\`\`ts\n${file}\`\`\``)
})

describeStoreConformance({
  name: 'README map store',
  kind: 'server',
  createStore: () => mapStore(),
  userSessions: false,
  // The README's minimal store answers booleans: the cookie cache then reissues no cookie after its writes.
  returnsRecord: false,
})
