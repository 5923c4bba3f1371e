/**
 * @module An HTTP proxy in front of the local Upstash endpoint that can misbehave on demand: hold requests and
 * never answer (a hung store), or pass a request on and then drop the connection instead of the reply (a reply
 * lost on the way back, which clients retry).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { fileResource } from './file-resource.ts'
import type { LocalUpstash } from './local-upstash.ts'

export type ProxyMode = 'forward' | 'hang'

export interface FaultProxy {
  /** `http://127.0.0.1:<port>`: give it to the client instead of the endpoint's URL. */
  readonly url: string
  /** `'forward'` passes requests on; `'hang'` accepts them and never answers. */
  mode: ProxyMode
  /** Requests received, in every mode. */
  readonly received: number
  /** Requests held unanswered right now (`'hang'`). */
  readonly held: number
  /** The next `count` requests are passed on, but their connection is dropped instead of the reply. */
  loseReplies(count: number): void
  /** Replies dropped so far. */
  readonly lost: number
  /** Drops the held requests' connections without passing them on. */
  releaseHeld(): void
  stop(): Promise<void>
}

/** Headers that belong to one hop and must not be copied. */
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'host'])

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const held = new Set<ServerResponse>()
  const sockets = new Set<Socket>()
  let mode: ProxyMode = 'forward'
  let received = 0
  let toLose = 0
  let lost = 0

  const forward = async (req: IncomingMessage, res: ServerResponse, body: string) => {
    const headers = new Headers()
    for (const [name, value] of Object.entries(req.headers)) {
      if (!HOP.has(name) && typeof value === 'string') headers.set(name, value)
    }
    const lose = toLose > 0
    if (lose) toLose--
    const answer = await fetch(target + (req.url ?? '/'), { method: req.method ?? 'POST', headers, body })
    const text = Buffer.from(await answer.arrayBuffer())
    if (lose) {
      // Redis has run the command; the client never learns it did.
      lost++
      req.socket.destroy()
      return
    }
    const out: Record<string, string> = {}
    answer.headers.forEach((value, name) => {
      if (!HOP.has(name)) out[name] = value
    })
    res.writeHead(answer.status, { ...out, 'content-length': String(text.length) })
    res.end(text)
  }

  const server: Server = createServer((req, res) => {
    received++
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      if (mode === 'hang') {
        held.add(res)
        res.on('close', () => held.delete(res))
        return
      }
      forward(req, res, Buffer.concat(chunks).toString('utf8')).catch(() => req.socket.destroy())
    })
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const address = server.address()
  if (address === null || typeof address !== 'object') throw new Error('the proxy has no port')

  return {
    url: `http://127.0.0.1:${address.port}`,
    get mode() {
      return mode
    },
    set mode(next: ProxyMode) {
      mode = next
    },
    get received() {
      return received
    },
    get held() {
      return held.size
    },
    loseReplies(count) {
      toLose = count
    },
    get lost() {
      return lost
    },
    releaseHeld() {
      for (const res of held) res.socket?.destroy()
      held.clear()
    },
    async stop() {
      for (const res of held) res.socket?.destroy()
      held.clear()
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        for (const socket of sockets) socket.destroy()
      })
    },
  }
}

/** A proxy in front of `local`'s endpoint for this test file, started before its tests and stopped after them. */
export function useFaultProxy(local: LocalUpstash): FaultProxy {
  return fileResource(
    () => startFaultProxy(local.endpoint.url),
    (proxy) => proxy.stop(),
  )
}
