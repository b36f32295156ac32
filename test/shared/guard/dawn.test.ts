import { describe, expect, it } from 'vitest'
import { binomialUpperTail } from '../../../src/shared/guard/binomial-test.ts'
import { createHmac } from 'node:crypto'
import { canonicalInput, chooseWatermark, verifyOwnership, watermarkFromMac, watermarkKey, watermarkProbabilities } from '../../../src/shared/guard/dawn.ts'

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
  it('marks about the configured share and picks controls, deterministically, with another label for marks', async () => {
    const key = await watermarkKey(new TextEncoder().encode('secret-a') as Uint8Array<ArrayBuffer>)
    let marked = 0
    let controls = 0
    for (let i = 0; i < 20_000; i++) {
      const input = [i, i / 7, 0.5]
      const choice = await chooseWatermark(key, input, i % 10, 10, 0.01)
      if (!choice.selected) continue
      if (choice.kind === 'mark') {
        marked++
        expect(choice.label).not.toBe(i % 10)
      } else {
        controls++
        expect(choice.label).toBe(i % 10)
      }
      expect(await chooseWatermark(key, input, i % 10, 10, 0.01)).toEqual(choice)
    }
    expect(marked).toBeGreaterThan(150)
    expect(marked).toBeLessThan(250)
    expect(controls).toBeGreaterThan(4 * 150)
    expect(controls).toBeLessThan(4 * 250)
    const other = await watermarkKey(new TextEncoder().encode('secret-b') as Uint8Array<ArrayBuffer>)
    const a = await Promise.all(Array.from({ length: 2000 }, (_, i) => chooseWatermark(key, [i], 0, 10, 0.05)))
    const b = await Promise.all(Array.from({ length: 2000 }, (_, i) => chooseWatermark(other, [i], 0, 10, 0.05)))
    const marks = (choices: typeof a) => choices.map((choice) => choice.selected && choice.kind === 'mark')
    expect(marks(a).filter((m, i) => m && marks(b)[i]).length).toBeLessThan(20)
  })

  it('chooses from a MAC computed elsewhere exactly as from its own (a simulation computes it synchronously)', async () => {
    const secret = new TextEncoder().encode('secret-sync') as Uint8Array<ArrayBuffer>
    const key = await watermarkKey(secret)
    let selected = 0
    for (let i = 0; i < 3000; i++) {
      const input = [i / 3, 1 - i / 3000, 0.25]
      const mac = createHmac('sha256', secret).update(canonicalInput(input)).digest()
      const choice = watermarkFromMac(mac, i % 10, 10, 0.02)
      expect(choice).toEqual(await chooseWatermark(key, input, i % 10, 10, 0.02))
      if (choice.selected) selected++
    }
    expect(selected).toBeGreaterThan(100)
  })

  it('reads inputs as float32 so JSON spelling does not matter, and keeps probabilities consistent', () => {
    expect(canonicalInput([0.1, 1])).toEqual(canonicalInput([0.10000000000000001, 1.0]))
    expect(watermarkProbabilities([0.7, 0.2, 0.1], 2)).toEqual([0.1, 0.2, 0.7])
  })

  it('proves ownership of a copy and not of an independent model, with the chance rate from the controls', () => {
    const controls = Array.from({ length: 40 }, (_, i) => ({ kind: 'control' as const, label: i % 10, suspectLabel: i === 0 ? 3 : i % 10 }))
    // A surrogate that learned half of 8 marks and agrees with us on 39 of 40 controls.
    const copy = [...controls, ...Array.from({ length: 8 }, (_, i) => ({ kind: 'mark' as const, label: i, suspectLabel: i % 2 === 0 ? i : 9 }))]
    const proven = verifyOwnership(copy, 10)
    expect(proven).toMatchObject({ queries: 8, matches: 4, controls: 40, control_disagreement: 1 / 40, verdict: 'ownership_proven' })
    expect(proven.chance_rate).toBeCloseTo(2 / 42 / 9, 12)
    expect(proven.p_value).toBeCloseTo(binomialUpperTail(8, 4, 2 / 42 / 9), 20)
    // A model that disagrees with ours everywhere gets no benefit of the doubt.
    const independent = Array.from({ length: 100 }, (_, i) => ({ kind: i % 5 === 0 ? ('mark' as const) : ('control' as const), label: i % 10, suspectLabel: (i * 7 + 3) % 10 }))
    expect(verifyOwnership(independent, 10).verdict).toBe('not_proven')
    expect(verifyOwnership([], 10)).toMatchObject({ verdict: 'not_proven', p_value: 1 })
    expect(verifyOwnership(copy.filter((a) => a.kind === 'mark'), 10).chance_rate).toBeCloseTo(1 / 9, 12)
  })
})
