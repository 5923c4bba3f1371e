/**
 * @module A session's deadlines, judged on the sessions' clock: the idle and absolute timeouts, when a touch is
 * due, and the metadata a write records. Shared by server-stored and cookie-sealed sessions.
 */

import type { ResolvedSessionsOptions } from './options.ts'
import type { SessionState } from './session.ts'
import type { SessionMeta, SessionTimes } from './store.ts'

export class Lifetimes {
  readonly now: () => number
  readonly #idleMs: number
  readonly #absoluteMs: number
  readonly #touchMs: number
  /** The store's own floor between two touches, which even an explicit `touch()` respects. */
  readonly #minTouchMs: number

  constructor(options: ResolvedSessionsOptions, minTouchMs: number) {
    this.now = options.now
    this.#idleMs = options.idleTimeout * 1000
    this.#absoluteMs = options.absoluteTimeout * 1000
    this.#minTouchMs = minTouchMs
    this.#touchMs = Math.max(options.touchInterval * 1000, minTouchMs)
  }

  /** The nearer of the idle deadline (from `lastSeenAt`) and the absolute one (from `createdAt`). */
  deadline(createdAt: number, lastSeenAt: number): number {
    return Math.min(lastSeenAt + this.#idleMs, createdAt + this.#absoluteMs)
  }

  /** Expiry is judged here, on the sessions' clock, whatever the cookie or the store's TTL say. */
  isLive(meta: SessionTimes, now: number): boolean {
    return now < Math.min(meta.expiresAt, this.deadline(meta.createdAt, meta.lastSeenAt))
  }

  /** The metadata of a session that starts now. */
  start(now: number): SessionMeta {
    return { createdAt: now, lastSeenAt: now, expiresAt: this.deadline(now, now) }
  }

  /**
   * New metadata for a record written now. A new session, or one regenerated with `renew`, starts a new absolute
   * lifetime; any other write (a plain regenerate included) keeps the one it has.
   */
  written(state: SessionState, now: number): SessionMeta {
    const createdAt = state.phase === 'unsaved' || state.renew ? now : state.meta.createdAt
    const meta: SessionMeta = {
      createdAt,
      lastSeenAt: now,
      expiresAt: this.deadline(createdAt, now),
      handle: state.handle,
    }
    if (state.flash.size > 0) meta.flash = [...state.flash]
    const user = state.user
    if (user?.key) meta.user = { id: user.id, key: user.key, agent: user.agent, label: user.label }
    return meta
  }

  /** Whether an unchanged session's deadline is due to be extended. */
  touchDue(state: SessionState, now: number): boolean {
    return now - state.meta.lastSeenAt >= (state.touchRequested ? this.#minTouchMs : this.#touchMs)
  }
}

/** The times of `meta`, without its flash markers: what a patch or a touch sends. */
export function timesOf(meta: SessionTimes): SessionTimes {
  return { createdAt: meta.createdAt, lastSeenAt: meta.lastSeenAt, expiresAt: meta.expiresAt }
}
