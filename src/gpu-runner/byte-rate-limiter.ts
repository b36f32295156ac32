import { setTimeout as sleep } from 'node:timers/promises'

// Paces byte streams to a rate shared by every download of this runner. Each
// chunk books the next slot on one timeline and waits until its bytes are
// paid for; while the reader waits it does not read, so TCP backpressure slows
// the sender too.

export type ByteRateLimiter = {
  take(bytes: number, signal?: AbortSignal): Promise<void>
}

export type ByteRateLimiterOptions = {
  // 0 means unlimited.
  bytesPerSecond: number
  now?: () => number
}

export function createByteRateLimiter(options: ByteRateLimiterOptions): ByteRateLimiter {
  const { bytesPerSecond } = options
  const now = options.now ?? performance.now.bind(performance)
  if (bytesPerSecond <= 0) return { take: async () => {} }

  let paidUntil = now()
  return {
    async take(bytes, signal) {
      signal?.throwIfAborted()
      const start = Math.max(now(), paidUntil)
      paidUntil = start + (bytes * 1000) / bytesPerSecond
      const wait = paidUntil - now()
      if (wait > 0) await sleep(wait, undefined, { signal })
    },
  }
}
