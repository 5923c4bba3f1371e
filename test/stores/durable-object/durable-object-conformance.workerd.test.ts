/** @module The Durable Objects store inside workerd: the conformance suite, per-user part included. */
import { durableObjectStore } from '../../../src/stores/durable-object.ts'
import { describeStoreConformance } from '../../shared/conformance.ts'
import { type DurableObjectBindings, doEnv, freshPrefix } from './durable-object-bindings.ts'

describeStoreConformance({
  name: 'durable-object',
  kind: 'server',
  createStore: () =>
    durableObjectStore({
      namespace: (env: DurableObjectBindings) => env.SESSION_OBJECTS,
      prefix: freshPrefix(),
    }),
  env: () => doEnv,
  userSessions: true,
})
