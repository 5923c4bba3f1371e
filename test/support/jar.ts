/** @module A minimal cookie jar for tests: keeps what Set-Cookie says, sends it back as a Cookie header. */

export class CookieJar {
  readonly cookies = new Map<string, string>()

  /** Applies a response's Set-Cookie headers (Max-Age=0 deletes), and returns them. */
  update(response: Response): string[] {
    const lines = response.headers.getSetCookie()
    for (const line of lines) {
      const [pair = '', ...attributes] = line.split(';').map((part) => part.trim())
      const eq = pair.indexOf('=')
      const name = pair.slice(0, eq)
      const value = pair.slice(eq + 1)
      const maxAge = attributes.find((a) => a.toLowerCase().startsWith('max-age='))
      if (maxAge && Number(maxAge.slice(8)) <= 0) this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
    return lines
  }

  get(name: string): string | undefined {
    return this.cookies.get(name)
  }

  header(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ')
  }

  /** A Request carrying this jar's cookies. */
  request(url = 'https://app.example/', init: RequestInit = {}): Request {
    const headers = new Headers(init.headers)
    if (this.cookies.size > 0) headers.set('cookie', this.header())
    return new Request(url, { ...init, headers })
  }

  clone(): CookieJar {
    const jar = new CookieJar()
    for (const [name, value] of this.cookies) jar.cookies.set(name, value)
    return jar
  }
}

/** A clock tests move by hand, in ms. */
export function manualClock(start = Date.UTC(2030, 0, 1)) {
  let now = start
  return {
    now: () => now,
    advance(ms: number) {
      now += ms
    },
    set(ms: number) {
      now = ms
    },
  }
}
