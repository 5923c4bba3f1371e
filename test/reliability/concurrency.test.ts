/** @module The concurrency suite on the memory store and on the Upstash store (a real redis-server behind the endpoint). */
import { memoryStore } from 'edge-session/stores/memory'
import { upstashStore } from 'edge-session/stores/upstash'
import { useLocalUpstash } from '../support/use-local-upstash.ts'
import { describeConcurrency } from './concurrency.ts'

const local = useLocalUpstash({ resetEach: false })

describeConcurrency({ name: 'memory', createStore: () => memoryStore() })

let prefixes = 0
describeConcurrency({
  name: 'upstash',
  createStore: () => upstashStore({ redis: local.client(), prefix: `concurrency-${++prefixes}:` }),
})
