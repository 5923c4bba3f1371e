/** @module A local HTTP endpoint speaking the Upstash Redis REST protocol to a real redis-server, counting calls. */
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { freePort } from './redis-server.ts'
import { RespConnection, RespError, type RespReply, RespStatus } from './resp.ts'

/** One HTTP request the endpoint served (or refused). */
export interface EndpointRequest {
  path: '/' | '/pipeline' | '/multi-exec'
  /** The commands it carried, as sent. */
  commands: string[][]
}

export interface UpstashEndpoint {
  /** `http://127.0.0.1:<port>`: what `UPSTASH_REDIS_REST_URL` holds. */
  readonly url: string
  readonly port: number
  /** What `UPSTASH_REDIS_REST_TOKEN` holds. */
  readonly token: string
  /** Authorized requests with a well-formed body since the start or the last `resetCounts()`, in arrival order. */
  readonly requests: readonly EndpointRequest[]
  /** Round trips (HTTP requests) counted in `requests`. */
  readonly requestCount: number
  /** Redis commands those requests carried. */
  readonly commandCount: number
  resetCounts(): void
  /**
   * While set, every authorized, well-formed request is answered with this status and `{"error": error}`
   * instead of reaching Redis, as Upstash answers a request it refuses (a rate limit, an internal error). Null
   * restores normal service.
   */
  refuse(reply: { status: number; error: string } | null): void
  readonly listening: boolean
  /** Stops answering: closes the listener, every open HTTP connection and the Redis connections. */
  stop(): Promise<void>
  /** Listens again on the same port after `stop()` (clients keep their URL). */
  start(): Promise<void>
}

export interface UpstashEndpointOptions {
  /** The redis-server to forward to. */
  redisPort: number
  redisHost?: string
  /** Random unless given. */
  token?: string
  /** A free port unless given. */
  port?: number
}

type Body = { result: unknown } | { error: string }

/** A command a client asked for that Redis never saw: the request is malformed. */
class BadRequest extends Error {}

/**
 * Starts the endpoint on 127.0.0.1. Protocol, as the Upstash REST API and `@upstash/redis` use it:
 * - `POST /` with one command as a JSON array of strings (numbers and booleans are accepted and stringified);
 *   `{"result": ...}` with 200, or `{"error": ...}` with 400 when Redis answers with an error.
 * - `POST /pipeline` with an array of commands: 200 and one `{"result"}` or `{"error"}` item per command.
 * - `POST /multi-exec`: the same, inside MULTI/EXEC on one connection; a transaction Redis refuses to run
 *   (EXECABORT) is a single 400 `{"error"}`.
 * - `Authorization: Bearer <token>`, or 401.
 * - `Upstash-Encoding: base64`: every string in a result is base64 (also status replies such as "OK" inside
 *   arrays), except a top-level "OK"; integers are numbers, nil is null. Without it strings are UTF-8 text.
 *   RESP2 is spoken to Redis, so replies a client would turn into objects (HGETALL) stay flat arrays.
 */
export async function startUpstashEndpoint(options: UpstashEndpointOptions): Promise<UpstashEndpoint> {
  const token = options.token ?? randomBytes(24).toString('base64url')
  const port = options.port ?? (await freePort())
  const redisHost = options.redisHost ?? '127.0.0.1'
  const idle: RespConnection[] = []
  const inUse = new Set<RespConnection>()
  let requests: EndpointRequest[] = []
  let server: Server | undefined
  let refusal: { status: number; error: string } | null = null

  // Each request borrows a connection of its own for its duration, so a MULTI is never interleaved with
  // another request's commands; connections are reused afterwards.
  const acquire = async (): Promise<RespConnection> => {
    let connection = idle.pop()
    while (connection !== undefined && !connection.usable) connection = idle.pop()
    connection ??= await RespConnection.open(options.redisPort, redisHost)
    inUse.add(connection)
    return connection
  }
  const release = (connection: RespConnection) => {
    inUse.delete(connection)
    if (connection.usable && server !== undefined) idle.push(connection)
    else connection.close()
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname.replace(/\/+$/, '') || '/'
    if (req.method !== 'POST') return send(res, 405, { error: 'only POST is served here' })
    if (path !== '/' && path !== '/pipeline' && path !== '/multi-exec') {
      return send(res, 404, { error: `unknown path ${path}` })
    }
    const raw = await readBody(req)
    if (req.headers.authorization !== `Bearer ${token}`) return send(res, 401, { error: 'Unauthorized' })
    const base64 = String(req.headers['upstash-encoding'] ?? '').toLowerCase() === 'base64'

    let commands: string[][]
    try {
      const parsed: unknown = JSON.parse(raw)
      commands = path === '/' ? [toCommand(parsed)] : toCommands(parsed)
    } catch (error) {
      const message = error instanceof BadRequest ? error.message : 'ERR the body is not valid JSON'
      return send(res, 400, { error: message })
    }
    requests.push({ path, commands })
    if (refusal !== null) return send(res, refusal.status, { error: refusal.error })

    const connection = await acquire()
    try {
      if (path === '/') {
        const reply = await connection.send(commands[0] ?? [])
        if (reply instanceof RespError) return send(res, 400, { error: reply.message })
        return send(res, 200, { result: toJson(reply, base64, true) })
      }
      if (path === '/pipeline') {
        const replies = await connection.sendAll(commands)
        return send(
          res,
          200,
          replies.map((reply) => item(reply, base64)),
        )
      }
      const replies = await connection.sendAll([['MULTI'], ...commands, ['EXEC']])
      const exec = replies.at(-1)
      if (exec instanceof RespError || !Array.isArray(exec)) {
        // A command refused while queueing aborts the whole transaction: report the first refusal.
        const queued = replies.slice(1, -1).find((reply) => reply instanceof RespError)
        const error = queued instanceof RespError ? queued : exec instanceof RespError ? exec : undefined
        return send(res, 400, { error: error?.message ?? 'EXECABORT transaction discarded' })
      }
      return send(
        res,
        200,
        exec.map((reply) => item(reply, base64)),
      )
    } finally {
      release(connection)
    }
  }

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const created = createServer((req, res) => {
        handle(req, res).catch((error: unknown) => {
          // Redis unreachable, or a socket closed mid-request: a server-side failure, as Upstash reports it.
          if (!res.headersSent) send(res, 500, { error: `ERR ${(error as Error).message}` })
          else res.destroy()
        })
      })
      created.once('error', reject)
      created.listen(port, '127.0.0.1', () => {
        created.off('error', reject)
        server = created
        resolve()
      })
    })

  await listen()

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    token,
    get requests() {
      return requests
    },
    get requestCount() {
      return requests.length
    },
    get commandCount() {
      return requests.reduce((sum, request) => sum + request.commands.length, 0)
    },
    resetCounts() {
      requests = []
    },
    refuse(reply) {
      refusal = reply
    },
    get listening() {
      return server !== undefined
    },
    async stop() {
      const current = server
      if (current === undefined) return
      server = undefined
      await new Promise<void>((resolve) => {
        current.close(() => resolve())
        // Keep-alive sockets would otherwise keep answering (and keep close() waiting).
        current.closeAllConnections()
      })
      for (const connection of [...idle.splice(0), ...inUse]) connection.close()
      inUse.clear()
    },
    async start() {
      if (server === undefined) await listen()
    },
  }
}

function send(res: ServerResponse, status: number, body: Body | Body[]): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function item(reply: RespReply, base64: boolean): Body {
  return reply instanceof RespError ? { error: reply.message } : { result: toJson(reply, base64, true) }
}

/** A RESP reply as the JSON Upstash sends; `topLevel` because only a top-level "OK" escapes base64. */
function toJson(reply: RespReply, base64: boolean, topLevel: boolean): unknown {
  if (reply === null || typeof reply === 'number') return reply
  if (Array.isArray(reply)) return reply.map((element) => toJson(element, base64, false))
  if (reply instanceof RespStatus) {
    if (!base64 || (topLevel && reply.value === 'OK')) return reply.value
    return Buffer.from(reply.value, 'utf8').toString('base64')
  }
  // An error nested in an array (a script returning one): its text, as a string.
  if (reply instanceof RespError)
    return base64 ? Buffer.from(reply.message).toString('base64') : reply.message
  return base64 ? reply.toString('base64') : reply.toString('utf8')
}

function toCommand(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0) throw new BadRequest('ERR a command is a non-empty array')
  return value.map((arg) => {
    if (typeof arg === 'string') return arg
    if (typeof arg === 'number' || typeof arg === 'boolean') return String(arg)
    throw new BadRequest('ERR command arguments are strings or numbers')
  })
}

function toCommands(value: unknown): string[][] {
  if (!Array.isArray(value) || value.length === 0) throw new BadRequest('ERR a pipeline is a non-empty array')
  return value.map(toCommand)
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}
