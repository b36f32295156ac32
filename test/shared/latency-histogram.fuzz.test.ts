import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { bucketLow, LATENCY_BUCKETS, latencyBucket, latencyQuantile } from '../../src/shared/traffic/latency-histogram.ts'
import { outcomeOf } from '../../src/shared/traffic/request-observation.ts'
import { fuzzSettings, fuzzTimeout } from '../support/fuzz-settings.ts'

const settings = fuzzSettings(2000, process.env)
const LAST = LATENCY_BUCKETS - 1
const TOLERANCE = 2 ** (1 / 8) * (1 + 1e-12)

function histogram(latencies: number[]): Map<number, number> {
  const counts = new Map<number, number>()
  for (const ms of latencies) counts.set(latencyBucket(ms), (counts.get(latencyBucket(ms)) ?? 0) + 1)
  return counts
}

function trueQuantile(latencies: number[], q: number): number {
  const sorted = [...latencies].sort((a, b) => a - b)
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1]!
}

const latency = fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.double({ min: 0, max: 2 ** 21, noNaN: true }))

describe('latency histogram', () => {
  it('puts every latency in the bucket whose bounds hold it', { timeout: fuzzTimeout(settings, 0.05) }, () => {
    fc.assert(
      fc.property(latency, (ms) => {
        const k = latencyBucket(ms)
        expect(ms).toBeGreaterThanOrEqual(bucketLow(k))
        if (k < LAST) expect(ms).toBeLessThan(bucketLow(k + 1))
      }),
      settings,
    )
  })

  it('reads p50 within a factor 2^(1/8) of the true median, and in the bucket that holds it', { timeout: fuzzTimeout(settings, 0.2) }, () => {
    fc.assert(
      fc.property(fc.array(latency, { minLength: 1, maxLength: 200 }), fc.constantFrom(0.5, 0.9, 0.99), (latencies, q) => {
        const exact = trueQuantile(latencies, q)
        const read = latencyQuantile(histogram(latencies), q)!
        expect(read.bucket).toBe(latencyBucket(exact))
        expect(exact).toBeGreaterThanOrEqual(read.low)
        if (read.high !== null) expect(exact).toBeLessThan(read.high)
        if (exact >= 1 && read.bucket < LAST) {
          expect(read.ms / exact).toBeLessThanOrEqual(TOLERANCE)
          expect(exact / read.ms).toBeLessThanOrEqual(TOLERANCE)
        }
      }),
      settings,
    )
  })

  it('sums hours by adding their counts: the p50 of two hours is the p50 of all their requests', () => {
    const first = [3, 3, 4, 250]
    const second = [90, 95, 100, 110, 120]
    const merged = new Map(histogram(first))
    for (const [k, n] of histogram(second)) merged.set(k, (merged.get(k) ?? 0) + n)
    expect(latencyQuantile(merged, 0.5)!.bucket).toBe(latencyBucket(95))
    expect(latencyQuantile(new Map(), 0.5)).toBeNull()
  })

  it('edges: sub-millisecond is bucket 0, powers of two start a bucket, the last bucket is open', () => {
    expect(latencyBucket(0)).toBe(0)
    expect(latencyBucket(0.999)).toBe(0)
    expect(latencyBucket(1)).toBe(1)
    expect(latencyBucket(2)).toBe(5)
    expect(latencyBucket(1024)).toBe(41)
    expect(latencyBucket(Number.MAX_VALUE)).toBe(LAST)
    expect(latencyBucket(Number.NaN)).toBe(0)
  })

  it('classes statuses: 429 refused, 5xx fault, other 4xx client error', () => {
    expect([200, 201, 303, 400, 404, 429, 500, 503].map(outcomeOf)).toEqual([
      'served', 'served', 'served', 'client_error', 'client_error', 'refused', 'fault', 'fault',
    ])
  })
})
