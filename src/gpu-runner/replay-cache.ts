import { SIGNATURE_WINDOW_SECONDS } from '../shared/runner-signature.ts'

// Signatures seen within the signing window. A signature older than the window
// is already refused by its timestamp, so entries can be forgotten after it.
// Only verified signatures are remembered, so the size is bounded by what the
// edge (the only holder of the secret) sends in one window.

export type ReplayCache = {
  // True the first time a signature is seen, false on every replay.
  remember(signature: string): boolean
  readonly size: number
}

export type ReplayCacheOptions = {
  windowSeconds?: number
  now?: () => number
}

export function createReplayCache(options: ReplayCacheOptions = {}): ReplayCache {
  // Twice the window: a timestamp may be up to one window in the past or the future.
  const ttlMs = (options.windowSeconds ?? SIGNATURE_WINDOW_SECONDS) * 2 * 1000
  const now = options.now ?? Date.now
  const expiries = new Map<string, number>()

  const prune = (time: number) => {
    // Insertion order is expiry order, so pruning stops at the first live entry.
    for (const [signature, expiresAt] of expiries) {
      if (expiresAt > time) return
      expiries.delete(signature)
    }
  }

  return {
    remember(signature) {
      const time = now()
      prune(time)
      if (expiries.has(signature)) return false
      expiries.set(signature, time + ttlMs)
      return true
    },
    get size() {
      return expiries.size
    },
  }
}
