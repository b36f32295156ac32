import { describe, expect, it } from 'vitest'
import { decodeToFloat32, encodeFromFloat32, floatToBf16Bits, floatToF16Bits } from '../../../src/gpu-runner/tensors/dtype-codec.ts'

const bitsOf = (value: number) => new Uint32Array(new Float32Array([value]).buffer)[0]!
const floatOf = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0]!

describe('narrowing rounds to nearest, ties to even', () => {
  it('bf16', () => {
    expect(floatToBf16Bits(bitsOf(1))).toBe(0x3f80)
    // Halfway between 0x3f80 and 0x3f81: ties go to the even 0x3f80; just above goes up.
    expect(floatToBf16Bits(0x3f808000)).toBe(0x3f80)
    expect(floatToBf16Bits(0x3f818000)).toBe(0x3f82)
    expect(floatToBf16Bits(0x3f808001)).toBe(0x3f81)
    expect(floatToBf16Bits(bitsOf(-Infinity))).toBe(0xff80)
    expect(floatToBf16Bits(0x7f7fffff)).toBe(0x7f80) // the largest float rounds to infinity
    expect(floatToBf16Bits(bitsOf(NaN)) & 0x7fc0).toBe(0x7fc0)
  })

  it('f16, subnormals and overflow included', () => {
    expect(floatToF16Bits(bitsOf(1))).toBe(0x3c00)
    expect(floatToF16Bits(bitsOf(65504))).toBe(0x7bff)
    expect(floatToF16Bits(bitsOf(65520))).toBe(0x7c00) // halfway to the next step: ties to even is infinity
    expect(floatToF16Bits(bitsOf(65519))).toBe(0x7bff)
    expect(floatToF16Bits(bitsOf(1 + 2 ** -11))).toBe(0x3c00) // tie, even stays
    expect(floatToF16Bits(bitsOf(1 + 3 * 2 ** -11))).toBe(0x3c02) // tie, odd rounds up
    expect(floatToF16Bits(bitsOf(2 ** -24))).toBe(0x0001)
    expect(floatToF16Bits(bitsOf(2 ** -25))).toBe(0x0000) // tie between 0 and the smallest subnormal
    expect(floatToF16Bits(bitsOf(1.5 * 2 ** -24))).toBe(0x0002)
    expect(floatToF16Bits(bitsOf(-(2 ** -14)))).toBe(0x8400)
    expect(floatToF16Bits(bitsOf(1e-10))).toBe(0)
    expect(floatToF16Bits(bitsOf(Infinity))).toBe(0x7c00)
    expect(floatToF16Bits(bitsOf(NaN)) & 0x7e00).toBe(0x7e00)
  })
})

describe('decoding', () => {
  it('round-trips every f16 and bf16 value that is not NaN', () => {
    const all = new Uint8Array(65536 * 2)
    for (let h = 0; h < 65536; h++) {
      all[h * 2] = h & 0xff
      all[h * 2 + 1] = h >>> 8
    }
    for (const dtype of ['F16', 'BF16'] as const) {
      const values = new Float32Array(65536)
      decodeToFloat32(dtype, all, values)
      const back = new Uint8Array(all.byteLength)
      encodeFromFloat32(dtype, values, back)
      const wrong: number[] = []
      for (let h = 0; h < 65536; h++) {
        if (!Number.isNaN(values[h]) && (back[h * 2]! | (back[h * 2 + 1]! << 8)) !== h) wrong.push(h)
      }
      expect(wrong).toEqual([])
    }
  })

  it('reads float8 e4m3fn and e5m2', () => {
    const out = new Float32Array(6)
    decodeToFloat32('F8_E4M3', new Uint8Array([0x38, 0x7e, 0x01, 0xff, 0xb8, 0x00]), out)
    expect(Array.from(out)).toEqual([1, 448, 2 ** -9, NaN, -1, 0])
    decodeToFloat32('F8_E5M2', new Uint8Array([0x3c, 0x7b, 0x01, 0x7c, 0xfc, 0x7d]), out)
    expect(Array.from(out)).toEqual([1, 57344, 2 ** -16, Infinity, -Infinity, NaN])
  })

  it('reads f32 and f64 at any alignment', () => {
    const bytes = new Uint8Array(13)
    new DataView(bytes.buffer).setFloat32(1, 3.5, true)
    new DataView(bytes.buffer).setFloat32(5, -2, true)
    const out = new Float32Array(2)
    decodeToFloat32('F32', bytes.subarray(1, 9), out)
    expect(Array.from(out)).toEqual([3.5, -2])
    new DataView(bytes.buffer).setFloat64(1, 0.1, true)
    decodeToFloat32('F64', bytes.subarray(1, 9), out, 1)
    expect(out[1]).toBe(floatOf(bitsOf(0.1)))
  })
})
