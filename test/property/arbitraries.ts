/** @module fast-check arbitraries shared by the property tests: cookie headers, cookie values, session data. */
import fc from 'fast-check'

/** Characters a cookie value may hold (RFC 6265 §4.1.1 cookie-octet). */
export const COOKIE_OCTETS = [
  '!',
  ...Array.from({ length: 0x2b - 0x23 + 1 }, (_, i) => String.fromCharCode(0x23 + i)),
  ...Array.from({ length: 0x3a - 0x2d + 1 }, (_, i) => String.fromCharCode(0x2d + i)),
  ...Array.from({ length: 0x5b - 0x3c + 1 }, (_, i) => String.fromCharCode(0x3c + i)),
  ...Array.from({ length: 0x7e - 0x5d + 1 }, (_, i) => String.fromCharCode(0x5d + i)),
]

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.split('')

/** A cookie value as a browser would send it. */
export const cookieValue = (maxLength = 200) =>
  fc.string({ unit: fc.constantFrom(...COOKIE_OCTETS), maxLength })

/** base64url text of exactly `length` characters (canonical or not). */
export const base64urlText = (length: number) =>
  fc.string({ unit: fc.constantFrom(...BASE64URL), minLength: length, maxLength: length })

/** Something shaped like a signed id, `<43>.<43>`: it gets as far as the HMAC check. */
export const signedShaped = fc.tuple(base64urlText(43), base64urlText(43)).map(([id, sig]) => `${id}.${sig}`)

/** Something shaped like an iron seal, eight `*`-separated parts, the first `Fe26.2`. */
export const sealShaped = fc
  .array(fc.oneof(base64urlText(22), base64urlText(12), cookieValue(40)), { minLength: 7, maxLength: 7 })
  .map((parts) => ['Fe26.2', ...parts].join('*'))

/** Pieces a hostile or broken client puts in a Cookie header. */
const fragment = (name: string) =>
  fc.oneof(
    fc.constantFrom(
      `${name}=`,
      `${name}.0=`,
      `${name}.1=`,
      `${name}.4=`,
      `${name}.9=`,
      `${name}.=`,
      `${name}.01=`,
      ` ${name} = `,
      ';',
      '; ',
      '=',
      '==',
      '"',
      '%',
      '%Z',
      '%ZZ',
      '%0',
      '%00',
      '%E0%A4%A',
      '%uD800',
      '%%%',
      '\t',
      ',',
      '\\',
      'Fe26.2*',
      '.',
      '*',
    ),
    fc.string({ unit: 'binary-ascii', maxLength: 30 }),
    fc.string({ unit: 'binary', maxLength: 30 }),
    cookieValue(60),
    signedShaped,
    sealShaped,
  )

/** Any string at all, with a bias towards things that look like the cookie `name` and its chunks. */
export const anyCookieHeader = (name: string) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.array(fragment(name), { maxLength: 40 }).map((parts) => parts.join('')) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 300 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 300 }) },
    {
      // Huge values and many repeats of the name.
      weight: 1,
      arbitrary: fc
        .tuple(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 0, max: 70_000 }), fragment(name))
        .map(
          ([repeat, size, tail]) =>
            `${Array.from({ length: repeat }, (_, i) => `${name}${i % 3 === 0 ? '' : `.${i % 7}`}=${'A'.repeat(size / repeat)}`).join('; ')}${tail}`,
        ),
    },
  )

/**
 * What a Cookie header can carry once it is inside a `Request`: a ByteString (code points up to U+00FF) without
 * NUL, CR or LF, which the Headers class refuses. Runtimes decode raw header bytes as Latin-1 the same way.
 */
export function asHeaderValue(text: string): string {
  let out = ''
  for (const ch of text) {
    const code = ch.codePointAt(0) as number
    const byte = code > 0xff ? code & 0xff : code
    if (byte === 0 || byte === 10 || byte === 13) continue
    out += String.fromCharCode(byte)
  }
  return out
}

/**
 * JSON data as a JSON text can carry it. `-0` is left out: JSON.stringify writes it as `0`, so no JSON store
 * can keep it (fc.jsonValue produces it, as JSON.parse does).
 */
export const jsonData = (maxDepth = 3) =>
  fc
    .jsonValue({
      maxDepth,
      stringUnit: fc.oneof(fc.constantFrom('a', 'é', '🍣', '"', '\\', '\u2028', '\0'), fc.string()),
    })
    .map((value) => JSON.parse(JSON.stringify(value)) as unknown)

/**
 * Session data: any keys (`__proto__` and the empty key included), JSON values. Built with own properties, not
 * fc.dictionary, which assigns `__proto__` as a prototype.
 */
export const sessionData = (maxKeys = 8, minKeys = 0) =>
  fc
    .uniqueArray(
      fc.tuple(
        fc.oneof(fc.string(), fc.constantFrom('__proto__', 'constructor', '', 'a:b', 'd:x')),
        jsonData(),
      ),
      {
        minLength: minKeys,
        maxLength: maxKeys,
        selector: ([key]) => key,
      },
    )
    .map((entries) => {
      const data: Record<string, unknown> = {}
      for (const [key, value] of entries) {
        Object.defineProperty(data, key, { value, enumerable: true, writable: true, configurable: true })
      }
      return data
    })
