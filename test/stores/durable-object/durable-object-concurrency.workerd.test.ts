/** @module The concurrency suite on the Durable Objects store inside workerd: 100 writers on one session. */
import { durableObjectStore } from '../../../src/stores/durable-object.ts'
import { describeConcurrency } from '../../shared/concurrency.ts'
import { doEnv, freshPrefix } from './durable-object-bindings.ts'

describeConcurrency({
  name: 'durable-object',
  createStore: () => durableObjectStore({ namespace: doEnv.SESSION_OBJECTS, prefix: freshPrefix() }),
  counts: false,
})
