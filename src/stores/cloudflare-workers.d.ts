/** @module @internal What the Durable Objects store takes from workerd's `cloudflare:workers`, to compile here. */
// Without `@cloudflare/workers-types`: where those are loaded (test/support/workerd), they are used instead. An app
// using `edge-session/stores/durable-object` needs them (README).
declare module 'cloudflare:workers' {
  export abstract class DurableObject<Env = unknown> {
    protected ctx: unknown
    protected env: Env
    constructor(ctx: unknown, env: Env)
    alarm?(alarmInfo?: unknown): void | Promise<void>
  }
}
