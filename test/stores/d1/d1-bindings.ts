/** @module The D1 binding the workerd test project declares (vitest.config.ts: `d1Databases: ['DB']`). */
import { env } from 'cloudflare:workers'
import type { D1Binding } from '../../../src/stores/d1.ts'

export interface D1Bindings {
  /** A Miniflare D1 database: the SQLite that D1 runs, with D1's limits. */
  DB: D1Binding
}

export const d1Env = env as unknown as D1Bindings
export const db = d1Env.DB

let tables = 0
/** A table name no other test uses, so tests sharing the database do not see each other's rows. */
export const freshTable = (): string => `t${++tables}_${crypto.randomUUID().replaceAll('-', '')}`
