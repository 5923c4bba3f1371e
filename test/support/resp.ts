/** @module A small RESP2 client over node:net, keeping status replies, bulk strings, integers, errors and nil apart. */
import { connect, type Socket } from 'node:net'

/** A simple-string (status) reply such as `+OK`, kept apart from a bulk string holding the same text. */
export class RespStatus {
  constructor(readonly value: string) {}
}

/** An error reply (`-ERR ...`): a value, not a thrown error, so a pipeline keeps each command's own outcome. */
export class RespError {
  constructor(readonly message: string) {}
}

/** Bulk strings stay bytes (Redis strings are binary); nil bulk strings and nil arrays are null. */
export type RespReply = RespStatus | RespError | number | Buffer | null | RespReply[]

interface Pending {
  resolve(reply: RespReply): void
  reject(error: Error): void
}

/** Thrown when a reply cannot be parsed: the connection is closed, since its framing is lost. */
class RespProtocolError extends Error {}

const CRLF = Buffer.from('\r\n')

/** Encodes one command as a RESP array of bulk strings. */
export function encodeCommand(args: readonly (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const arg of args) {
    const bytes = typeof arg === 'string' ? Buffer.from(arg, 'utf8') : arg
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, CRLF)
  }
  return Buffer.concat(parts)
}

/**
 * Parses one reply from `buffer` at `offset`. Returns the reply and the offset after it, or undefined when the
 * buffer does not hold a whole reply yet.
 */
export function parseReply(buffer: Buffer, offset: number): { reply: RespReply; next: number } | undefined {
  const lineEnd = buffer.indexOf(CRLF, offset)
  if (lineEnd === -1) return undefined
  const type = String.fromCharCode(buffer[offset] ?? 0)
  const line = buffer.toString('utf8', offset + 1, lineEnd)
  const afterLine = lineEnd + 2
  switch (type) {
    case '+':
      return { reply: new RespStatus(line), next: afterLine }
    case '-':
      return { reply: new RespError(line), next: afterLine }
    case ':':
      return { reply: Number(line), next: afterLine }
    case '$': {
      const length = Number(line)
      if (length === -1) return { reply: null, next: afterLine }
      if (buffer.length < afterLine + length + 2) return undefined
      return { reply: buffer.subarray(afterLine, afterLine + length), next: afterLine + length + 2 }
    }
    case '*': {
      const count = Number(line)
      if (count === -1) return { reply: null, next: afterLine }
      const items: RespReply[] = []
      let next = afterLine
      for (let i = 0; i < count; i++) {
        const item = parseReply(buffer, next)
        if (item === undefined) return undefined
        items.push(item.reply)
        next = item.next
      }
      return { reply: items, next }
    }
    default:
      throw new RespProtocolError(`unexpected RESP type byte ${JSON.stringify(type)}`)
  }
}

/**
 * One connection to Redis. Commands are pipelined: each is written at once and its reply matched in order
 * (Redis answers in order on a connection).
 */
export class RespConnection {
  readonly #socket: Socket
  readonly #pending: Pending[] = []
  #buffer: Buffer = Buffer.alloc(0)
  #closed: Error | undefined

  private constructor(socket: Socket) {
    this.#socket = socket
    socket.on('data', (chunk: Buffer) => this.#receive(chunk))
    socket.on('error', (error) => this.#fail(error))
    socket.on('close', () => this.#fail(new Error('redis connection closed')))
  }

  /** Opens a connection to Redis on `host:port`. */
  static open(port: number, host = '127.0.0.1'): Promise<RespConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host, noDelay: true })
      const onError = (error: Error) => reject(error)
      socket.once('error', onError)
      socket.once('connect', () => {
        socket.off('error', onError)
        resolve(new RespConnection(socket))
      })
    })
  }

  /** False once the connection has failed or been closed; it is never reused then. */
  get usable(): boolean {
    return this.#closed === undefined
  }

  /** Sends one command; resolves with its reply (error replies included, as {@link RespError}). */
  send(args: readonly (string | Buffer)[]): Promise<RespReply> {
    return this.sendAll([args]).then((replies) => replies[0] ?? null)
  }

  /** Sends commands in one write; resolves with their replies in order. */
  sendAll(commands: readonly (readonly (string | Buffer)[])[]): Promise<RespReply[]> {
    if (this.#closed) return Promise.reject(this.#closed)
    const replies = commands.map(
      () => new Promise<RespReply>((resolve, reject) => this.#pending.push({ resolve, reject })),
    )
    this.#socket.write(Buffer.concat(commands.map(encodeCommand)))
    return Promise.all(replies)
  }

  /** Closes the socket; commands still waiting reject. */
  close(): void {
    this.#fail(new Error('redis connection closed'))
    this.#socket.destroy()
  }

  #receive(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk])
    let offset = 0
    try {
      for (;;) {
        const parsed = parseReply(this.#buffer, offset)
        if (parsed === undefined) break
        offset = parsed.next
        this.#pending.shift()?.resolve(parsed.reply)
      }
    } catch (error) {
      this.#fail(error as Error)
      this.#socket.destroy()
      return
    }
    this.#buffer = this.#buffer.subarray(offset)
  }

  #fail(error: Error): void {
    this.#closed ??= error
    for (const pending of this.#pending.splice(0)) pending.reject(error)
  }
}
