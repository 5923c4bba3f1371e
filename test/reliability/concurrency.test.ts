/** @module The concurrency suite on the memory store and on the Upstash store (a real redis-server behind the endpoint). */
import { memoryStore } from 'edge-session/stores/memory'
import { upstashStore } from 'edge-session/stores/upstash'
import { afterAll, beforeAll } from 'vitest'
import { type LocalUpstash, startLocalUpstash } from '../support/local-upstash.ts'
import { describeConcurrency } from './concurrency.ts'

let local: LocalUpstash

beforeAll(async () => {
  local = await startLocalUpstash()
})

afterAll(async () => {
  await local?.stop()
})

describeConcurrency({ name: 'memory', createStore: () => memoryStore() })

let prefixes = 0
describeConcurrency({
  name: 'upstash',
  createStore: () => upstashStore({ redis: local.client(), prefix: `concurrency-${++prefixes}:` }),
})
