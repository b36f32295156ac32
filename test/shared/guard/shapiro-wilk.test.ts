import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { erfc, normalCdf, normalQuantile, normalUpperTail } from '../../../src/shared/guard/normal-distribution.ts'
import { shapiroWilk } from '../../../src/shared/guard/shapiro-wilk.ts'

type Reference = { scipy: string; cases: { name: string; x: number[]; w: number; p: number }[] }
const reference = JSON.parse(readFileSync(new URL('../../fixtures/guard/shapiro-reference.json', import.meta.url), 'utf8')) as Reference

describe('the normal distribution', () => {
  it('matches known values of erfc, the CDF and the quantile', () => {
    expect(erfc(0)).toBe(1)
    expect(erfc(1)).toBeCloseTo(0.157299207050285, 14)
    expect(erfc(3)).toBeCloseTo(2.20904969985854e-5, 17)
    expect(erfc(-1)).toBeCloseTo(1.842700792949715, 14)
    expect(normalCdf(1.96)).toBeCloseTo(0.9750021048517795, 13)
    expect(normalUpperTail(10) / 7.619853024160527e-24).toBeCloseTo(1, 10)
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963984540054, 12)
    expect(normalQuantile(1e-10)).toBeCloseTo(-6.361340902404056, 10)
    expect(normalQuantile(0.5)).toBeCloseTo(0, 14)
    expect(normalQuantile(0)).toBe(-Infinity)
    expect(normalQuantile(2)).toBeNaN()
  })
})

describe('Shapiro–Wilk (Royston)', () => {
  it(`matches SciPy ${reference.scipy} on ${reference.cases.length} samples`, () => {
    expect(reference.cases.length).toBeGreaterThan(40)
    for (const sample of reference.cases) {
      const result = shapiroWilk(sample.x)
      // SciPy's swilk keeps single-precision coefficients, so agreement is to
      // about six digits, not fifteen.
      expect(result.w, sample.name).toBeCloseTo(sample.w, 5)
      if (sample.p > 1e-12) expect(Math.abs(result.p - sample.p) / sample.p, sample.name).toBeLessThan(2e-3)
      else expect(result.p, sample.name).toBeLessThan(1e-10)
    }
  })

  it('does not depend on order, location or scale', () => {
    const x = reference.cases.find((sample) => sample.name === 'exponential-50')!.x
    const base = shapiroWilk(x)
    const moved = shapiroWilk([...x].reverse().map((value) => value * 1e-6 + 3))
    expect(moved.w).toBeCloseTo(base.w, 8)
    expect(moved.p).toBeCloseTo(base.p, 8)
  })

  it('refuses what it cannot test', () => {
    expect(() => shapiroWilk([1, 2])).toThrow(RangeError)
    expect(() => shapiroWilk([2, 2, 2, 2])).toThrow(/identical/)
    expect(() => shapiroWilk([1, Number.NaN, 3])).toThrow(/finite/)
    expect(() => shapiroWilk(new Float64Array(5001).map((_, i) => i))).toThrow(RangeError)
  })
})
