import { describe, expect, it } from 'vitest'
import { runKernel } from '../../../src/gpu-runner/merge/cpu/kernels.ts'

// The task-arithmetic combine against its formula, element by element and to
// the bit: out = base + (Σ w·(model − base) / divisor) · λ, each task vector
// rounded to float32 as a stored one is, NaN, infinities and -0 included.

const SPECIAL = [0, -0, 1, -1, 1e-40, -1e-40, 3.4e38, -3.4e38, Infinity, -Infinity, NaN, 0.1, -0.25, 1e-8]

function arrays(n: number, seed: number): Float32Array {
  const out = new Float32Array(n)
  let state = seed
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    out[i] = state % 5 === 0 ? SPECIAL[state % SPECIAL.length]! : (state / 2 ** 32 - 0.5) * 0.2
  }
  return out
}

function expected(base: Float32Array, models: Float32Array[], weights: number[], normalize: boolean, lambda: number): Float32Array {
  const total = weights.reduce((a, b) => a + b, 0)
  const divisor = normalize ? (Math.abs(total) < 1e-8 ? 1 : total) : 1
  return base.map((b, i) => {
    let sum = 0
    for (const [m, model] of models.entries()) sum += weights[m]! * Math.fround(model[i]! - b)
    return b + (sum / divisor) * lambda
  })
}

// Every NaN as one: IEEE leaves a NaN result's sign and payload open, and the
// SIMD kernels get the processor's default NaN where V8's scalar code made
// another.
const bits = (array: Float32Array) => Array.from(new Uint32Array(array.buffer.slice(0)), (b) => ((b & 0x7fffffff) > 0x7f800000 ? 0x7fc00000 : b))

describe('taskCombine without pruning', () => {
  const n = 4096
  for (const models of [1, 2, 3]) {
    for (const [normalize, lambda] of [
      [false, 1],
      [true, 1],
      [false, 0.5],
      [true, 1.5],
    ] as const) {
      it(`matches the formula for ${models} model(s), normalize ${normalize}, λ ${lambda}`, () => {
        const base = arrays(n, 7)
        const inputs = Array.from({ length: models }, (_, m) => arrays(n, 11 + m))
        const weights = [0.5, -0.3, 1].slice(0, models)
        const want = expected(base, inputs, weights, normalize, lambda)
        const out = new Float32Array(n)
        runKernel({ op: 'taskCombine', start: 0, end: n, deltas: inputs, weights, base, out, consensus: false, normalize, lambda, fromInputs: true })
        expect(bits(out)).toEqual(bits(want))
      })
    }
  }
})
