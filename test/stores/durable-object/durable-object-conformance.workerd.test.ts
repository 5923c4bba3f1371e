/** @module The Durable Objects store inside workerd: the conformance suite, per-user part included. */
import { describeStoreConformance } from '../../shared/conformance.ts'
import { conformanceOptions } from './durable-object-bindings.ts'

// The run behind the cookie cache is in durable-object-cache.workerd.test.ts: Miniflare keeps every object a
// file has started, and one file with both runs (about 2,000 objects) slows its later tests past their timeouts.
describeStoreConformance(conformanceOptions(['plain']))
