/** @module `npm run dev:redis`: a local redis-server behind a local Upstash REST endpoint, until Ctrl-C. */
import { startLocalUpstash } from '../test/support/local-upstash.ts'

const local = await startLocalUpstash()

console.log(
  `redis-server (pid ${local.redisServer.pid}) on 127.0.0.1:${local.redisServer.port}, nothing persisted`,
)
console.log('Upstash REST endpoint ready. In another shell:\n')
console.log(`export UPSTASH_REDIS_REST_URL=${local.endpoint.url}`)
console.log(`export UPSTASH_REDIS_REST_TOKEN=${local.endpoint.token}`)
console.log('\nCtrl-C stops both.')

let stopping = false
const shutdown = async (signal: NodeJS.Signals) => {
  if (stopping) return
  stopping = true
  console.log(`\n${signal}: stopping`)
  await local.stop()
  process.exit(0)
}
process.on('SIGINT', shutdown)
process.on('SIGTERM', shutdown)
