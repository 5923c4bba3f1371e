/**
 * @module One process's paired measurement, for `runBench`: builds every subject, measures them against the
 * baseline, and prints the figures as one line of JSON on stdout (progress goes to stderr).
 * Argument: the options as JSON (`{ "paired": PairedOptions, "only"?: string[], "sql"?: SqlServers }`).
 */

import { measurePaired, type PairedOptions } from './paired.ts'
import type { SqlServers } from './sql.ts'
import { createSubjects } from './subjects.ts'

const { paired, only, sql } = JSON.parse(process.argv[2] ?? '{}') as {
  paired: Omit<PairedOptions, 'log'>
  only?: string[]
  sql?: SqlServers
}
const subjects = await createSubjects(sql)
try {
  const list = only ? subjects.list.filter((s) => s.id === 'baseline' || only.includes(s.id)) : subjects.list
  const figures = await measurePaired(list, { ...paired, log: (line) => console.error(line) })
  console.log(JSON.stringify(figures))
} finally {
  await subjects.close()
}
