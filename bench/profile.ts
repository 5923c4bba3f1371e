/**
 * @module Runs one subject's reads or writes in a loop for a few seconds, for a CPU profile:
 * `node --cpu-prof --import tsx bench/profile.ts edge-memory read 5`.
 */

import { loggedInClient, type RequestKind, timeBatch } from './requests.ts'
import { createSubjects } from './subjects.ts'

const [id = 'edge-memory', kind = 'read', seconds = '5'] = process.argv.slice(2)
if (kind !== 'read' && kind !== 'write') throw new Error('kind must be read or write')
const subjects = await createSubjects()
try {
  const subject = subjects.list.find((s) => s.id === id)
  if (!subject) throw new Error(`no subject ${id}: ${subjects.list.map((s) => s.id).join(', ')}`)
  const client = await loggedInClient(subject)
  const deadline = performance.now() + Number(seconds) * 1000
  let requests = 0
  let total = 0
  while (performance.now() < deadline) {
    total += await timeBatch(client, kind as RequestKind, 1000)
    requests += 1000
  }
  console.log(
    `${subject.label} ${kind}: ${requests} requests, ${((total / (requests / 1000)) * 1000).toFixed(2)} µs each`,
  )
} finally {
  await subjects.close()
}
