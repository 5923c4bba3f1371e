/**
 * @module The workerd test project's main Worker: it exports the Durable Object class the `SESSION_OBJECTS`
 * binding names (a class must come from the main module), and answers nothing else.
 */
export { SessionObject } from '../../../src/stores/durable-object.ts'

export default {
  fetch(): Response {
    return new Response('Not found', { status: 404 })
  },
}
