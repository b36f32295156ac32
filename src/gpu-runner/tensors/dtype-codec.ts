import type { SafetensorsDtype } from '../../shared/safetensors-header.ts'

// Conversions between stored dtypes and the float32 every merge computes in.
// Narrowing rounds to nearest, ties to even, as torch's casts do, so a bf16
// or f16 output is bit-identical to what torch writes for the same floats.

export const WRITABLE_DTYPES = ['F32', 'F16', 'BF16'] as const
export type WritableDtype = (typeof WRITABLE_DTYPES)[number]

export const READABLE_FLOAT_DTYPES = ['F64', 'F32', 'F16', 'BF16', 'F8_E4M3', 'F8_E5M2'] as const
export type ReadableFloatDtype = (typeof READABLE_FLOAT_DTYPES)[number]

export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

export function isReadableFloat(dtype: SafetensorsDtype): dtype is ReadableFloatDtype {
  return (READABLE_FLOAT_DTYPES as readonly string[]).includes(dtype)
}

let f16Table: Float32Array | null = null
let e4m3Table: Float32Array | null = null
let e5m2Table: Float32Array | null = null

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const exponent = (h >>> 10) & 0x1f
  const mantissa = h & 0x3ff
  if (exponent === 0) return sign * mantissa * 2 ** -24
  if (exponent === 31) return mantissa ? NaN : sign * Infinity
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15)
}

function f16Values(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536)
    for (let h = 0; h < 65536; h++) f16Table[h] = halfToFloat(h)
  }
  return f16Table
}

// float8_e4m3fn: no infinities, NaN only at S.1111.111.
function e4m3Values(): Float32Array {
  if (!e4m3Table) {
    e4m3Table = new Float32Array(256)
    for (let b = 0; b < 256; b++) {
      const sign = b & 0x80 ? -1 : 1
      const exponent = (b >>> 3) & 0xf
      const mantissa = b & 7
      if (exponent === 15 && mantissa === 7) e4m3Table[b] = NaN
      else if (exponent === 0) e4m3Table[b] = sign * (mantissa / 8) * 2 ** -6
      else e4m3Table[b] = sign * (1 + mantissa / 8) * 2 ** (exponent - 7)
    }
  }
  return e4m3Table
}

// float8_e5m2: IEEE-like, the top half of an f16.
function e5m2Values(): Float32Array {
  if (!e5m2Table) {
    e5m2Table = new Float32Array(256)
    for (let b = 0; b < 256; b++) e5m2Table[b] = halfToFloat(b << 8)
  }
  return e5m2Table
}

// Decodes `bytes` (little-endian, any alignment) into `out` starting at `outOffset`.
export function decodeToFloat32(dtype: ReadableFloatDtype, bytes: Uint8Array, out: Float32Array, outOffset = 0): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  switch (dtype) {
    case 'F32': {
      if (bytes.byteOffset % 4 === 0) out.set(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), outOffset)
      else for (let i = 0; i < bytes.byteLength / 4; i++) out[outOffset + i] = view.getFloat32(i * 4, true)
      return
    }
    case 'F64': {
      for (let i = 0; i < bytes.byteLength / 8; i++) out[outOffset + i] = view.getFloat64(i * 8, true)
      return
    }
    case 'BF16': {
      // Int32, not Uint32: `h << 16` is a signed 32-bit value, and storing it
      // into a Uint32Array made every element a slow conversion.
      const bits = new Int32Array(out.buffer, out.byteOffset + outOffset * 4, bytes.byteLength / 2)
      if (LITTLE_ENDIAN && bytes.byteOffset % 2 === 0) {
        const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, bits.length)
        for (let i = 0; i < bits.length; i++) bits[i] = halves[i]! << 16
        return
      }
      for (let i = 0, j = 0; i < bits.length; i++, j += 2) bits[i] = (bytes[j]! | (bytes[j + 1]! << 8)) << 16
      return
    }
    case 'F16': {
      const table = f16Values()
      for (let i = 0, j = 0; j < bytes.byteLength; i++, j += 2) out[outOffset + i] = table[bytes[j]! | (bytes[j + 1]! << 8)]!
      return
    }
    case 'F8_E4M3':
    case 'F8_E5M2': {
      const table = dtype === 'F8_E4M3' ? e4m3Values() : e5m2Values()
      for (let i = 0; i < bytes.byteLength; i++) out[outOffset + i] = table[bytes[i]!]!
      return
    }
  }
}

export function floatToBf16Bits(bits: number): number {
  // NaN stays NaN (quiet) instead of rounding into infinity.
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff
}

export function floatToF16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000
  const exponent = (bits >>> 23) & 0xff
  const mantissa = bits & 0x7fffff
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 | (mantissa >>> 13) : 0)
  const e = exponent - 112
  if (e >= 31) return sign | 0x7c00
  if (e <= 0) {
    if (e < -10) return sign
    const full = mantissa | 0x800000
    const shift = 14 - e
    const half = 1 << (shift - 1)
    const rest = full & ((1 << shift) - 1)
    let rounded = full >>> shift
    if (rest > half || (rest === half && rounded & 1)) rounded++
    return sign | rounded
  }
  let rounded = (e << 10) | (mantissa >>> 13)
  const rest = mantissa & 0x1fff
  // A carry out of the mantissa lands in the exponent, up to infinity: that is the right result.
  if (rest > 0x1000 || (rest === 0x1000 && rounded & 1)) rounded++
  return sign | rounded
}

export function encodedSize(dtype: WritableDtype, count: number): number {
  return dtype === 'F32' ? count * 4 : count * 2
}

// Encodes `values` as `dtype`, little-endian, into `out` (which must hold encodedSize bytes).
export function encodeFromFloat32(dtype: WritableDtype, values: Float32Array, out: Uint8Array): void {
  if (dtype === 'F32') {
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength))
    return
  }
  if (dtype === 'BF16' && LITTLE_ENDIAN && out.byteOffset % 2 === 0) {
    // The hot path, inlined: int32 bits stay small integers for the JIT.
    const bits = new Int32Array(values.buffer, values.byteOffset, values.length)
    const halves = new Uint16Array(out.buffer, out.byteOffset, values.length)
    for (let i = 0; i < bits.length; i++) {
      const b = bits[i]!
      halves[i] = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16
    }
    return
  }
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length)
  const convert = dtype === 'BF16' ? floatToBf16Bits : floatToF16Bits
  for (let i = 0, j = 0; i < bits.length; i++, j += 2) {
    const half = convert(bits[i]!)
    out[j] = half & 0xff
    out[j + 1] = half >>> 8
  }
}
