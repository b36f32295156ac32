import { describe, expect, it } from 'vitest'
import { createReplayCache } from '../../src/gpu-runner/replay-cache.ts'

describe('createReplayCache', () => {
  it('accepts a signature once and refuses it again within the window', () => {
    let now = 0
    const cache = createReplayCache({ windowSeconds: 300, now: () => now })
    expect(cache.remember('v1=a')).toBe(true)
    expect(cache.remember('v1=b')).toBe(true)
    now = 599_000
    expect(cache.remember('v1=a')).toBe(false)
  })

  it('forgets signatures once their timestamps could no longer pass', () => {
    let now = 0
    const cache = createReplayCache({ windowSeconds: 300, now: () => now })
    cache.remember('v1=a')
    now = 300_000
    cache.remember('v1=b')
    now = 600_001
    cache.remember('v1=c')
    expect(cache.size).toBe(2)
    expect(cache.remember('v1=b')).toBe(false)
  })
})
