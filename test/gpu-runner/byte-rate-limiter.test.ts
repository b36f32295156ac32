import { describe, expect, it } from 'vitest'
import { createByteRateLimiter } from '../../src/gpu-runner/byte-rate-limiter.ts'

describe('createByteRateLimiter', () => {
  it('does not wait when unlimited', async () => {
    const limiter = createByteRateLimiter({ bytesPerSecond: 0 })
    const started = performance.now()
    for (let i = 0; i < 100; i++) await limiter.take(1_000_000)
    expect(performance.now() - started).toBeLessThan(50)
  })

  it('paces bytes to the rate, shared between callers', async () => {
    const limiter = createByteRateLimiter({ bytesPerSecond: 10_000 })
    const started = performance.now()
    // 3000 bytes from two streams at 10 kB/s: 300 ms in all.
    await Promise.all([
      (async () => {
        for (let i = 0; i < 3; i++) await limiter.take(500)
      })(),
      (async () => {
        for (let i = 0; i < 3; i++) await limiter.take(500)
      })(),
    ])
    const elapsed = performance.now() - started
    expect(elapsed).toBeGreaterThanOrEqual(290)
    expect(elapsed).toBeLessThan(600)
  })

  it('stops waiting when aborted', async () => {
    const limiter = createByteRateLimiter({ bytesPerSecond: 1 })
    const controller = new AbortController()
    const started = performance.now()
    const waiting = limiter.take(1_000, controller.signal)
    controller.abort()
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' })
    expect(performance.now() - started).toBeLessThan(100)
  })
})
