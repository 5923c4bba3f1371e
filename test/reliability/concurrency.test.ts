/** @module The concurrency suite on the memory store and on the Upstash store (a real redis-server behind the endpoint). */
import { memoryStore } from 'edge-session/stores/memory'
import { upstashStore } from 'edge-session/stores/upstash'
import { describeConcurrency } from '../shared/concurrency.ts'
import { useLocalUpstash } from '../support/use-local-upstash.ts'

const local = useLocalUpstash({ resetEach: false })

describeConcurrency({ name: 'memory', createStore: () => memoryStore() })

let prefixes = 0
describeConcurrency({
  name: 'upstash',
  createStore: () => upstashStore({ redis: local.client(), prefix: `concurrency-${++prefixes}:` }),
})
