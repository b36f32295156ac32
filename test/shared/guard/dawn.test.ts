import { describe, expect, it } from 'vitest'
import { binomialUpperTail } from '../../../src/shared/guard/binomial-test.ts'
import { canonicalInput, chooseWatermark, verifyOwnership, watermarkKey, watermarkProbabilities } from '../../../src/shared/guard/dawn.ts'

describe('binomial upper tail', () => {
  it('matches exact values', () => {
    // P(X ≥ 3), X ~ B(10, 0.5) = 1 − (1 + 10 + 45)/1024.
    expect(binomialUpperTail(10, 3, 0.5)).toBeCloseTo(1 - 56 / 1024, 14)
    expect(binomialUpperTail(10, 10, 0.5)).toBeCloseTo(1 / 1024, 16)
    expect(binomialUpperTail(10, 0, 0.3)).toBe(1)
    expect(binomialUpperTail(10, 11, 0.3)).toBe(0)
    // scipy.stats.binom.sf(39, 50, 0.1) = P(X ≥ 40).
    expect(binomialUpperTail(50, 40, 0.1) / 3.681147281615174e-31).toBeCloseTo(1, 10)
    expect(binomialUpperTail(1000, 250, 0.1)).toBeGreaterThan(0)
    expect(binomialUpperTail(1000, 250, 0.1)).toBeLessThan(1e-40)
    expect(() => binomialUpperTail(5, 2, 1.5)).toThrow(RangeError)
  })
})

describe('DAWN', () => {
  it('marks about the configured share, deterministically, with another label', async () => {
    const key = await watermarkKey(new TextEncoder().encode('secret-a') as Uint8Array<ArrayBuffer>)
    let marked = 0
    for (let i = 0; i < 20_000; i++) {
      const input = [i, i / 7, 0.5]
      const choice = await chooseWatermark(key, input, i % 10, 10, 0.01)
      if (choice.selected) {
        marked++
        expect(choice.label).not.toBe(i % 10)
        expect(await chooseWatermark(key, input, i % 10, 10, 0.01)).toEqual(choice)
      }
    }
    expect(marked).toBeGreaterThan(150)
    expect(marked).toBeLessThan(250)
    const other = await watermarkKey(new TextEncoder().encode('secret-b') as Uint8Array<ArrayBuffer>)
    const a = await Promise.all(Array.from({ length: 2000 }, (_, i) => chooseWatermark(key, [i], 0, 10, 0.05)))
    const b = await Promise.all(Array.from({ length: 2000 }, (_, i) => chooseWatermark(other, [i], 0, 10, 0.05)))
    expect(a.filter((choice, i) => choice.selected && b[i]!.selected).length).toBeLessThan(20)
  })

  it('reads inputs as float32 so JSON spelling does not matter, and keeps probabilities consistent', () => {
    expect(canonicalInput([0.1, 1])).toEqual(canonicalInput([0.10000000000000001, 1.0]))
    expect(watermarkProbabilities([0.7, 0.2, 0.1], 2)).toEqual([0.1, 0.2, 0.7])
  })

  it('proves ownership of a copy and not of an independent model', () => {
    const copy = Array.from({ length: 100 }, (_, i) => ({ watermarkLabel: i % 10, suspectLabel: i % 4 === 0 ? (i + 1) % 10 : i % 10 }))
    const proven = verifyOwnership(copy, 10)
    expect(proven).toMatchObject({ queries: 100, matches: 75, verdict: 'ownership_proven' })
    expect(proven.p_value).toBeLessThan(1e-40)
    const independent = Array.from({ length: 100 }, (_, i) => ({ watermarkLabel: i % 10, suspectLabel: (i * 7 + 3) % 10 }))
    expect(verifyOwnership(independent, 10).verdict).toBe('not_proven')
    expect(verifyOwnership([], 10)).toMatchObject({ verdict: 'not_proven', p_value: 1 })
  })
})
