/**
 * @module Child processes for tests: each spawned with its output collected, waited for with a deadline, stopped
 * by its own pid, and killed should the test worker exit without stopping it.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process'
import { createServer } from 'node:net'

/** A port the kernel just handed out on 127.0.0.1; another process could take it before we bind it again. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port)
        else reject(new Error('no port assigned'))
      })
    })
  })
}

/** How a process ended: its exit code or the signal that ended it, or the error that kept it from starting. */
export interface ProcessEnd {
  code: number | null
  signal: NodeJS.Signals | null
  error?: Error
}

/** A child process started by `spawnTracked`. */
export interface TrackedProcess {
  readonly child: ChildProcess
  /** Throws when the process could not be started. */
  readonly pid: number
  /** True until the process has exited (or failed to start). */
  readonly running: boolean
  /** Everything it printed, stdout and stderr, in the order it arrived. */
  output(): string
  /** Settles once the process has exited, or failed to start; never rejects. */
  readonly exited: Promise<ProcessEnd>
  /** SIGTERM, then SIGKILL if it is still running 5 s later; resolves once it has exited. */
  stop(): Promise<void>
  /** SIGKILL at once, as a crash would; resolves once it has exited. */
  kill(): Promise<void>
}

export interface SpawnTrackedOptions extends Pick<SpawnOptions, 'cwd'> {
  /** The whole environment of the process (`process.env` is not added); a key set to undefined is left out. */
  env?: Record<string, string | undefined>
}

const running = new Set<ChildProcess>()

// A test worker that exits without its afterAll hooks (a crash, a timeout) must not leave processes behind.
// Only the children started here are signalled, each by its own pid.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/** Spawns `command` with stdin ignored and stdout and stderr collected, tracked until it exits. */
export function spawnTracked(
  command: string,
  args: readonly string[],
  options: SpawnTrackedOptions = {},
): TrackedProcess {
  const env =
    options.env &&
    Object.fromEntries(
      Object.entries(options.env).filter((entry): entry is [string, string] => entry[1] !== undefined),
    )
  const child = spawn(command, args, { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  let output = ''
  const collect = (chunk: Buffer) => {
    output += chunk.toString()
  }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  let ended = false
  const exited = new Promise<ProcessEnd>((resolve) => {
    const end = (result: ProcessEnd) => {
      ended = true
      running.delete(child)
      resolve(result)
    }
    child.once('exit', (code, signal) => end({ code, signal }))
    // A process that could not be started (no such binary) emits no 'exit'.
    child.once('error', (error) => {
      if (child.pid === undefined) end({ code: null, signal: null, error })
    })
  })
  const signal = async (name: NodeJS.Signals) => {
    if (!ended) child.kill(name)
    await exited
  }
  return {
    child,
    get pid() {
      if (child.pid === undefined) throw new Error(`${command} has no pid: it did not start`)
      return child.pid
    },
    get running() {
      return !ended
    },
    output: () => output,
    exited,
    kill: () => signal('SIGKILL'),
    async stop() {
      if (ended) return
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
      await signal('SIGTERM')
      clearTimeout(timer)
    },
  }
}

export interface WaitOptions {
  /** What is awaited, for the error message: `redis-server on port 6379 to answer PING`. */
  what: string
  timeoutMs: number
  /** Between two checks; 50 ms by default. */
  intervalMs?: number
  /** A process whose exit ends the wait at once, with what it printed in the error. */
  process?: TrackedProcess
}

/**
 * Checks `ready` until it holds, every `intervalMs`: a function returning true (an exception it throws counts
 * as not yet: a connection refused, a server still starting), or a pattern the output of `process` matches.
 * Throws when `process` has exited, or when `timeoutMs` have passed.
 */
export async function waitFor(
  ready: RegExp | (() => boolean | Promise<boolean>),
  options: WaitOptions,
): Promise<void> {
  const { what, timeoutMs, intervalMs = 50, process: awaited } = options
  if (ready instanceof RegExp && !awaited) throw new Error(`waitFor(${ready}): which process's output?`)
  const check = ready instanceof RegExp ? () => ready.test(awaited?.output() ?? '') : ready
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let done = false
    try {
      done = await check()
    } catch {
      // Not yet.
    }
    // Checked after `ready`: an answer from another process on a port this one failed to bind does not count.
    if (awaited && !awaited.running) {
      const end = await awaited.exited
      const how = end.error ? `could not start (${end.error.message})` : `exited (${end.signal ?? end.code})`
      throw new Error(`gave up waiting for ${what}: the process ${how}:\n${awaited.output().trim()}`)
    }
    if (done) return
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}
