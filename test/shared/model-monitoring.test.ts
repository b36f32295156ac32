import { describe, expect, it } from 'vitest'
import { emptyWindow, latencyQuantile, observe, populationStabilityIndex } from '../../src/shared/model-monitoring.ts'

describe('model monitoring', () => {
  it('aggregates latency, errors, classes and confidence', () => {
    const window = emptyWindow(0)
    observe(window, { latencyMs: 3, error: false, predictions: ['7', '7'], topConfidences: [0.95, 0.55] })
    observe(window, { latencyMs: 40, error: true, predictions: [], topConfidences: [] })
    expect(window).toMatchObject({ requests: 2, errors: 1, rows: 2, classes: { '7': 2 } })
    expect(window.confidence[9]).toBe(1)
    expect(window.confidence[5]).toBe(1)
    expect(latencyQuantile(window.latency, 0.5)).toBe(5)
    expect(latencyQuantile(window.latency, 0.99)).toBe(50)
    expect(latencyQuantile(emptyWindow(0).latency, 0.5)).toBeNull()
  })

  it('computes PSI: zero for the same distribution, large for a shift', () => {
    const uniform = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [String(i), 100]))
    expect(populationStabilityIndex(uniform, uniform)).toBeCloseTo(0, 10)
    const scaled = Object.fromEntries(Object.entries(uniform).map(([k, v]) => [k, v * 3]))
    expect(populationStabilityIndex(uniform, scaled)).toBeCloseTo(0, 10)
    const shifted = { ...uniform, '7': 900, '1': 10 }
    expect(populationStabilityIndex(uniform, shifted)).toBeGreaterThan(0.2)
    const mild = { ...uniform, '7': 120 }
    expect(populationStabilityIndex(uniform, mild)).toBeLessThan(0.1)
    // The textbook example: bins 0.5/0.5 against 0.6/0.4 give 0.0405.
    expect(populationStabilityIndex([5000, 5000], [6000, 4000])).toBeCloseTo(0.1 * Math.log(1.2) + 0.1 * Math.log(1.25), 4)
    expect(populationStabilityIndex({ a: 1 }, { b: 1 })).toBeGreaterThan(0)
  })
})
