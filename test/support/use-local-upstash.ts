/** @module The local Upstash endpoint as a test file uses it: started before its tests, stopped after them. */
import { beforeEach } from 'vitest'
import { fileResource } from './file-resource.ts'
import { type LocalUpstash, startLocalUpstash } from './local-upstash.ts'

export interface UseLocalUpstashOptions {
  /**
   * Before each test, listen again should a test have stopped the endpoint, then empty Redis and reset the
   * endpoint's counts. True by default.
   */
  resetEach?: boolean
  /** Also before each test, once the endpoint listens and before Redis is emptied. */
  beforeEach?: (local: LocalUpstash) => Promise<void> | void
}

/** A `LocalUpstash` for this test file, held by a stand-in (see `fileResource`). */
export function useLocalUpstash(options: UseLocalUpstashOptions = {}): LocalUpstash {
  const local = fileResource(startLocalUpstash, (started) => started.stop())
  if (options.resetEach !== false) {
    beforeEach(async () => {
      if (!local.endpoint.listening) await local.endpoint.start()
      await options.beforeEach?.(local)
      await local.reset()
    })
  }
  return local
}
