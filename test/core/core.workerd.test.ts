/**
 * @module The core's own test modules, run again inside workerd (not copies): the library keeps to web APIs, and
 * behaves there as in Node.
 */
import './crypto.test.ts'
import './cookie.test.ts'
import './sessions.test.ts'
import './hono.test.ts'
import './cookie-cache.test.ts'
import '../stores/memory/memory.test.ts'
import '../stores/cookie/cookie.test.ts'
