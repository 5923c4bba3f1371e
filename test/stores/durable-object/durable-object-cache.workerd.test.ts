/** @module The Durable Objects store inside workerd: the conformance suite behind the cookie cache. */
import { durableObjectStore } from '../../../src/stores/durable-object.ts'
import { describeStoreConformance } from '../../shared/conformance.ts'
import { type DurableObjectBindings, doEnv, freshPrefix } from './durable-object-bindings.ts'

// The suite behind the cookie cache; the plain run is in durable-object-conformance.workerd.test.ts (see there).
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
  runs: ['cookieCache'],
})
