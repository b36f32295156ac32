import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { keyedSeed, maskingPolicySchema, maskProbabilities, MASKING_MODES } from '../../src/shared/masking/mask-probabilities.ts'

const policy = (input: Record<string, unknown>) => maskingPolicySchema.parse(input)
const sum = (values: number[]) => values.reduce((total, value) => total + value, 0)
const argmax = (values: number[]) => values.indexOf(Math.max(...values))

// Distributions over 2 to 20 classes with a strict maximum.
const distribution = fc
  .array(fc.integer({ min: 1, max: 10_000 }), { minLength: 2, maxLength: 20 })
  .filter((raw) => raw.filter((value) => value === Math.max(...raw)).length === 1)
  .map((raw) => raw.map((value) => value / sum(raw)))

const anyPolicy = fc.record({
  mode: fc.constantFrom(...MASKING_MODES),
  k: fc.integer({ min: 1, max: 5 }),
  renormalize: fc.boolean(),
  decimals: fc.integer({ min: 0, max: 4 }),
  sigma: fc.double({ min: 0, max: 0.5, noNaN: true }),
  distribution: fc.constantFrom('gaussian' as const, 'laplace' as const),
  keep_top1: fc.constant(true),
  beta: fc.double({ min: 0, max: 1, noNaN: true }),
  gamma: fc.double({ min: 0.05, max: 2, noNaN: true }),
})

describe('maskProbabilities: properties', () => {
  it('keeps the top-1 label in every mode where it is promised', () => {
    fc.assert(
      fc.property(distribution, anyPolicy, fc.integer(), (values, masking, seed) => {
        const masked = maskProbabilities(values, masking, seed)
        expect(masked.label).toBe(argmax(values))
        if (masked.probabilities && masking.mode !== 'round') expect(argmax(masked.probabilities)).toBe(masked.label)
      }),
      { numRuns: 2000, seed: 1 },
    )
  })

  it('answers distributions where the mode renormalises, with values in [0, 1]', () => {
    fc.assert(
      fc.property(distribution, anyPolicy, fc.integer(), (values, masking, seed) => {
        const masked = maskProbabilities(values, masking, seed)
        if (!masked.probabilities) return
        for (const value of masked.probabilities) expect(value >= 0 && value <= 1).toBe(true)
        const renormalised = masking.mode === 'noise' || masking.mode === 'reverse_sigmoid' || masking.mode === 'none' || (masking.mode === 'top_k' && masking.renormalize)
        if (renormalised) expect(sum(masked.probabilities)).toBeCloseTo(1, 9)
      }),
      { numRuns: 2000, seed: 2 },
    )
  })

  it('gives the same answer for the same seed (the same client and input)', () => {
    fc.assert(
      fc.property(distribution, anyPolicy, fc.integer(), (values, masking, seed) => {
        expect(maskProbabilities(values, masking, seed)).toEqual(maskProbabilities(values, masking, seed))
      }),
      { numRuns: 1000, seed: 3 },
    )
  })

  it('bounds the distortion of each mode', () => {
    fc.assert(
      fc.property(distribution, anyPolicy, fc.integer(), (values, masking, seed) => {
        const masked = maskProbabilities(values, masking, seed).probabilities
        if (!masked) return
        const worst = Math.max(...masked.map((value, i) => Math.abs(value - values[i]!)))
        if (masking.mode === 'none') expect(worst).toBe(0)
        if (masking.mode === 'round') expect(worst).toBeLessThanOrEqual(0.5 * 10 ** -masking.decimals + 1e-12)
        if (masking.mode === 'top_k' && !masking.renormalize) expect(masked.filter((value) => value > 0).length).toBeLessThanOrEqual(masking.k)
        expect(worst).toBeLessThanOrEqual(1)
      }),
      { numRuns: 2000, seed: 4 },
    )
  })
})

describe('maskProbabilities: modes', () => {
  const probabilities = [0.02, 0.6, 0.25, 0.1, 0.03]

  it('passes through, drops, rounds and keeps the top k', () => {
    expect(maskProbabilities(probabilities, policy({}))).toEqual({ label: 1, probabilities })
    expect(maskProbabilities(probabilities, policy({ mode: 'label_only' }))).toEqual({ label: 1, probabilities: null })
    expect(maskProbabilities([0.123456, 0.876544], policy({ mode: 'round', decimals: 1 })).probabilities).toEqual([0.1, 0.9])
    expect(maskProbabilities(probabilities, policy({ mode: 'top_k', k: 2 })).probabilities).toEqual([0, 0.6, 0.25, 0, 0])
    const renormalised = maskProbabilities(probabilities, policy({ mode: 'top_k', k: 2, renormalize: true })).probabilities!
    expect(renormalised[1]).toBeCloseTo(0.6 / 0.85, 12)
  })

  it('draws different noise for different seeds, Gaussian or Laplace', () => {
    for (const distribution of ['gaussian', 'laplace']) {
      const a = maskProbabilities(probabilities, policy({ mode: 'noise', distribution }), 1).probabilities!
      const b = maskProbabilities(probabilities, policy({ mode: 'noise', distribution }), 2).probabilities!
      expect(a).not.toEqual(b)
    }
  })

  it('may give up the top-1 label when the policy allows it', () => {
    const close = [0.34, 0.33, 0.33]
    const labels = new Set(Array.from({ length: 200 }, (_, seed) => maskProbabilities(close, policy({ mode: 'noise', sigma: 0.3, keep_top1: false }), seed).label))
    expect(labels.size).toBeGreaterThan(1)
  })

  it('validates policies strictly', () => {
    expect(() => maskingPolicySchema.parse({ mode: 'blur' })).toThrow()
    expect(() => maskingPolicySchema.parse({ mode: 'top_k', k: 0 })).toThrow()
    expect(() => maskingPolicySchema.parse({ mode: 'none', colour: 1 })).toThrow()
  })
})

describe('keyedSeed', () => {
  it('depends on the secret, the client and every input value', async () => {
    const key = (secret: string) => crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
    const a = await key('secret-a')
    const input = [0.1, 0.2, 0.3]
    expect(await keyedSeed(a, 'key_1', input)).toBe(await keyedSeed(a, 'key_1', [0.1, 0.2, 0.3]))
    expect(await keyedSeed(a, 'key_2', input)).not.toBe(await keyedSeed(a, 'key_1', input))
    expect(await keyedSeed(await key('secret-b'), 'key_1', input)).not.toBe(await keyedSeed(a, 'key_1', input))
    expect(await keyedSeed(a, 'key_1', [0.1, 0.2, 0.30001])).not.toBe(await keyedSeed(a, 'key_1', input))
  })
})
