/** @module The Durable Objects store inside workerd: the conformance suite behind the cookie cache. */
import { describeStoreConformance } from '../../shared/conformance.ts'
import { conformanceOptions } from './durable-object-bindings.ts'

// The plain run is in durable-object-conformance.workerd.test.ts (see there why apart).
describeStoreConformance(conformanceOptions(['cookieCache']))
