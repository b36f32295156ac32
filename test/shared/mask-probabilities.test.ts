import { describe, expect, it } from 'vitest'
import { inputSeed, maskingPolicySchema, maskProbabilities } from '../../src/shared/masking/mask-probabilities.ts'

const probabilities = [0.02, 0.6, 0.25, 0.1, 0.03]
const policy = (input: Record<string, unknown>) => maskingPolicySchema.parse(input)
const sum = (values: number[]) => values.reduce((total, value) => total + value, 0)

function randomDistribution(seed: number, classes: number): number[] {
  let state = seed
  const raw = Array.from({ length: classes }, () => ((state = (state * 1103515245 + 12345) % 2 ** 31), (state % 1000) + 1) as number)
  return raw.map((value) => value / sum(raw))
}

describe('maskProbabilities', () => {
  it('passes everything through with none, and drops probabilities with label_only', () => {
    expect(maskProbabilities(probabilities, policy({}))).toEqual({ label: 1, probabilities })
    expect(maskProbabilities(probabilities, policy({ mode: 'label_only' }))).toEqual({ label: 1, probabilities: null })
  })

  it('rounds and keeps the top k', () => {
    expect(maskProbabilities([0.123456, 0.876544], policy({ mode: 'round', decimals: 1 })).probabilities).toEqual([0.1, 0.9])
    expect(maskProbabilities(probabilities, policy({ mode: 'top_k', k: 2 })).probabilities).toEqual([0, 0.6, 0.25, 0, 0])
  })

  it('adds noise that keeps the label, sums to one, and repeats for the same input', () => {
    for (let seed = 1; seed < 200; seed++) {
      const values = randomDistribution(seed, 10)
      const masked = maskProbabilities(values, policy({ mode: 'noise', sigma: 0.2 }), inputSeed(values))
      expect(masked.label).toBe(values.indexOf(Math.max(...values)))
      expect(masked.probabilities!.indexOf(Math.max(...masked.probabilities!))).toBe(masked.label)
      expect(sum(masked.probabilities!)).toBeCloseTo(1, 9)
      expect(maskProbabilities(values, policy({ mode: 'noise', sigma: 0.2 }), inputSeed(values))).toEqual(masked)
    }
    const a = maskProbabilities(probabilities, policy({ mode: 'noise' }), 1).probabilities!
    const b = maskProbabilities(probabilities, policy({ mode: 'noise' }), 2).probabilities!
    expect(a).not.toEqual(b)
  })

  it('reverse sigmoid perturbs every probability but keeps the top label', () => {
    for (let seed = 1; seed < 200; seed++) {
      const values = randomDistribution(seed, 10)
      const masked = maskProbabilities(values, policy({ mode: 'reverse_sigmoid' }))
      expect(masked.probabilities!.indexOf(Math.max(...masked.probabilities!))).toBe(values.indexOf(Math.max(...values)))
      expect(sum(masked.probabilities!)).toBeCloseTo(1, 9)
      const change = masked.probabilities!.reduce((total, value, i) => total + Math.abs(value - values[i]!), 0)
      expect(change).toBeGreaterThan(0.01)
    }
  })

  it('validates policies strictly', () => {
    expect(() => maskingPolicySchema.parse({ mode: 'blur' })).toThrow()
    expect(() => maskingPolicySchema.parse({ mode: 'top_k', k: 0 })).toThrow()
    expect(() => maskingPolicySchema.parse({ mode: 'none', colour: 1 })).toThrow()
  })
})
