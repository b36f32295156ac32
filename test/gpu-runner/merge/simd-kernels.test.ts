import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { countNonFiniteSimd, decodeBf16Simd, encodeBf16Simd, linearSimd, SIMD_BLOCK, taskSumSimd } from '../../../src/gpu-runner/merge/cpu/simd-kernels.ts'
import { decodeToFloat32, encodeFromFloat32 } from '../../../src/gpu-runner/tensors/dtype-codec.ts'
import { assembleSimdKernels } from '../../../scripts/wasm/build-simd-kernels.ts'

// The SIMD kernels against the scalar code they replace (the dtype codec,
// itself checked against torch's casts) and against their formulas, to the
// bit: every bf16 pattern, NaN payloads, rounding ties, lengths that leave a
// partial vector or a partial block, operands that do not start at 0.

// Lengths around a vector (8) and a block.
const LENGTHS = [0, 1, 7, 8, 9, 100, SIMD_BLOCK - 1, SIMD_BLOCK, SIMD_BLOCK + 3, 3 * SIMD_BLOCK + 5]

const SPECIAL_BITS = [0x7fc00000, 0xffc00000, 0x7f800001, 0x7fbfffff, 0xff812345, 0x7f800000, 0xff800000, 0, 0x80000000, 1, 0x807fffff, 0x7f7fffff, 0xff7fffff, 0x3f808000, 0x3f818000, 0x3f807fff, 0x3f808001]

function words(n: number, seed: number): Int32Array {
  const out = new Int32Array(n)
  let state = seed
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    // One in eight a special pattern, the rest any bits at all.
    out[i] = state % 8 === 0 ? SPECIAL_BITS[(state >>> 8) % SPECIAL_BITS.length]! : Math.imul(state, 0x9e3779b1)
  }
  return out
}

function floats(n: number, seed: number): Float32Array {
  const bits = words(n, seed)
  // Ordinary magnitudes mostly, so sums are neither all NaN nor all infinite.
  for (let i = 0; i < n; i++) if (i % 8 !== 0) bits[i] = (bits[i]! & 0x807fffff) | ((120 + ((bits[i]! >>> 23) & 7)) << 23)
  return new Float32Array(bits.buffer)
}

const shared = (array: Float32Array) => {
  const out = new Float32Array(new SharedArrayBuffer(Math.max(4, array.byteLength)), 0, array.length)
  out.set(array)
  return out
}

const nonFinite = (bits: Int32Array) => bits.reduce((count, b) => count + ((b & 0x7f800000) === 0x7f800000 ? 1 : 0), 0)

// IEEE leaves a NaN result's sign and payload open: every NaN as one.
const canonical = (array: Float32Array) => Array.from(new Uint32Array(array.buffer, array.byteOffset, array.length), (b) => ((b & 0x7fffffff) > 0x7f800000 ? 0x7fc00000 : b))

describe('the committed wasm', () => {
  it('is what the committed source assembles to', async () => {
    const committed = new Uint8Array(await readFile(new URL('../../../src/gpu-runner/merge/cpu/simd-kernels.wasm', import.meta.url)))
    expect(Buffer.from(await assembleSimdKernels()).equals(Buffer.from(committed))).toBe(true)
  })
})

describe('decodeBf16Simd', () => {
  it('decodes every bf16 pattern as the codec does and counts NaN and infinity', () => {
    const halves = new Uint16Array(65536).map((_, i) => i)
    const bytes = new Uint8Array(halves.buffer)
    const want = new Float32Array(65536)
    decodeToFloat32('BF16', bytes, want)
    const out = new Float32Array(65536)
    // Exponent all ones: 2 signs × 128 mantissas.
    expect(decodeBf16Simd(bytes, out, 0)).toBe(256)
    expect(new Int32Array(out.buffer)).toEqual(new Int32Array(want.buffer))
  })

  for (const n of LENGTHS) {
    it(`decodes ${n} values from an odd byte offset into the middle of an array`, () => {
      const bits = words(n, n + 1)
      const source = new Uint8Array(2 * n + 1)
      for (let i = 0; i < n; i++) {
        source[1 + 2 * i] = bits[i]! & 0xff
        source[2 + 2 * i] = (bits[i]! >>> 8) & 0xff
      }
      const bytes = source.subarray(1)
      const want = new Float32Array(n + 10).fill(7)
      decodeToFloat32('BF16', bytes, want, 5)
      const out = new Float32Array(new SharedArrayBuffer((n + 10) * 4)).fill(7)
      const count = decodeBf16Simd(bytes, out, 5)
      expect(new Int32Array(out.buffer)).toEqual(new Int32Array(want.buffer))
      expect(count).toBe(nonFinite(new Int32Array(want.buffer).subarray(5, 5 + n)))
    })
  }
})

describe('encodeBf16Simd', () => {
  for (const n of LENGTHS) {
    it(`rounds ${n} values to nearest even, NaN kept a NaN, as the codec does`, () => {
      const values = shared(new Float32Array(words(n + 3, 3 * n + 2).buffer))
      const want = new Uint8Array(2 * n)
      encodeFromFloat32('BF16', values.subarray(3), want)
      const out = new Uint8Array(new SharedArrayBuffer(Math.max(1, 2 * n)), 0, 2 * n)
      encodeBf16Simd(values, 3, 3 + n, out)
      expect(Buffer.from(out).equals(Buffer.from(want))).toBe(true)
    })
  }

  it('sends every float32 whose top half is any pattern, and the ties around it, where the codec does', () => {
    const bits = new Int32Array(65536 * 4)
    for (let h = 0; h < 65536; h++) for (const [k, low] of [0, 0x7fff, 0x8000, 0x8001].entries()) bits[h * 4 + k] = (h << 16) | low
    const values = shared(new Float32Array(bits.buffer))
    const want = new Uint8Array(bits.length * 2)
    encodeFromFloat32('BF16', values, want)
    const out = new Uint8Array(new SharedArrayBuffer(bits.length * 2))
    encodeBf16Simd(values, 0, bits.length, out)
    expect(Buffer.from(out).equals(Buffer.from(want))).toBe(true)
  })
})

describe('countNonFiniteSimd', () => {
  for (const n of LENGTHS) {
    it(`counts NaN and infinity in ${n} values from an offset`, () => {
      const bits = words(n + 5, 5 * n + 3)
      const array = shared(new Float32Array(bits.buffer))
      expect(countNonFiniteSimd(array, 5, 5 + n)).toBe(nonFinite(bits.subarray(5, 5 + n)))
    })
  }
})

describe('linearSimd', () => {
  for (const k of [1, 2, 3, 4]) {
    for (const n of [9, SIMD_BLOCK + 3]) {
      it(`sums ${k} weighted arrays of ${n}, each partial sum rounded to float32, into the first`, () => {
        const arrays = Array.from({ length: k }, (_, m) => shared(floats(n, 17 * m + n)))
        const coefficients = [0.25, -0.7, 1.3, 0.1].slice(0, k)
        const want = arrays[0]!.map((_, i) => {
          let sum = Math.fround(coefficients[0]! * arrays[0]![i]!)
          for (let m = 1; m < k; m++) sum = Math.fround(sum + coefficients[m]! * arrays[m]![i]!)
          return sum
        })
        // From 2: the elements before the range stay as they were.
        want[0] = arrays[0]![0]!
        want[1] = arrays[0]![1]!
        linearSimd(arrays, coefficients, arrays[0]!, 2, n)
        expect(canonical(arrays[0]!)).toEqual(canonical(want))
      })
    }
  }
})

describe('taskSumSimd', () => {
  it('writes its result over the base, block after block', () => {
    const n = 2 * SIMD_BLOCK + 11
    const base = shared(floats(n, 1))
    const models = [shared(floats(n, 2)), shared(floats(n, 3))]
    const weights = [0.6, -0.2]
    const want = base.map((b, i) => b + ((weights[0]! * Math.fround(models[0]![i]! - b) + weights[1]! * Math.fround(models[1]![i]! - b)) / 0.4) * 1.5)
    taskSumSimd(models, weights, base, base, 0, n, 0.4, 1.5)
    expect(canonical(base)).toEqual(canonical(want))
  })
})
