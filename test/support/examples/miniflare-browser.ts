/** @module A browser driving a Worker in Miniflare: one session cookie, sent back, kept from Set-Cookie. */

import { createHash } from 'node:crypto'
import type { Miniflare } from 'miniflare'
import { expect } from 'vitest'

/** A browser with one cookie: sends it back, and keeps what Set-Cookie says. */
export class Browser {
  cookie: { name: string; value: string } | undefined
  /** The Set-Cookie lines of the last response. */
  setCookies: string[] = []

  constructor(readonly origin = 'http://localhost:8787') {}

  async fetch(mf: Miniflare, path: string, init: { method?: string; json?: unknown } = {}) {
    const headers: Record<string, string> = {}
    if (this.cookie) headers.cookie = `${this.cookie.name}=${this.cookie.value}`
    if (init.json !== undefined) headers['content-type'] = 'application/json'
    const response = await mf.dispatchFetch(`${this.origin}${path}`, {
      method: init.method ?? 'GET',
      headers,
      body: init.json === undefined ? undefined : JSON.stringify(init.json),
    })
    this.setCookies = response.headers.getSetCookie()
    for (const line of this.setCookies) {
      const [pair = '', ...attributes] = line.split(';').map((part) => part.trim())
      const [name = '', value = ''] = pair.split(/=(.*)/s)
      const cleared = attributes.some((a) => /^max-age=0$/i.test(a)) || value === ''
      this.cookie = cleared ? undefined : { name, value }
    }
    return response
  }

  async session(mf: Miniflare) {
    const response = await this.fetch(mf, '/api/session')
    expect(response.status).toBe(200)
    return (await response.json()) as { visits: number; user: string | null }
  }

  /** The session id the cookie carries (`<id>.<signature>`). */
  get id(): string {
    const id = this.cookie?.value.split('.')[0]
    if (!id) throw new Error('no session cookie')
    return id
  }

  /** The storage key of this browser's session: base64url(SHA-256(id)), never the id itself. */
  get key(): string {
    return createHash('sha256').update(this.id).digest('base64url')
  }
}
