/** @module The migration file shipped for `wrangler d1 migrations` is the SQL `migrate()` runs, table for table. */
import { readFileSync } from 'node:fs'
import { D1_MIGRATION, d1Schema } from 'edge-session/stores/d1'
import { expect, it } from 'vitest'

it('migrations/0001_sessions.sql holds D1_MIGRATION (comments apart), the default table', () => {
  const file = readFileSync(new URL('../../../migrations/0001_sessions.sql', import.meta.url), 'utf8')
  const sql = file
    .split('\n')
    .filter((line) => !line.startsWith('--'))
    .join('\n')
  expect(sql).toBe(D1_MIGRATION)
  expect(D1_MIGRATION).toBe(d1Schema('sessions'))
  expect(D1_MIGRATION).toContain('CREATE TABLE IF NOT EXISTS sessions (')
  expect(() => d1Schema('x; DROP TABLE y')).toThrow(/plain identifier/)
})
