import { readFileSync } from 'node:fs'
import { LITTLE_ENDIAN } from '../../tensors/dtype-codec.ts'

// The WebAssembly SIMD kernels (simd-kernels.wat) behind the JavaScript
// interface the CPU kernels use. A module's memory is its own, so each call
// stages a block of every operand into it (a memory copy), runs the kernel on
// the block while it is in cache, and copies the result out. The scalar
// loops these replace ran one element at a time: bf16 decoding and encoding
// and the linear and task-arithmetic combines were three to four times
// slower, and they are most of a bf16 merge's time.

type Exports = {
  memory: WebAssembly.Memory
  decodeBf16(src: number, dst: number, n: number): number
  countNonFinite(src: number, n: number): number
  encodeBf16(src: number, dst: number, n: number): void
  linearFirst(a: number, out: number, c: number, n: number): void
  linearAdd(a: number, out: number, c: number, n: number): void
  taskFirst(d: number, base: number, acc: number, w: number, n: number): void
  taskAdd(d: number, base: number, acc: number, w: number, n: number): void
  taskFinish(base: number, acc: number, out: number, divisor: number, lambda: number, n: number): void
}

// Elements per block: every operand's block (float64 for a sum) stays in a
// core's cache between the kernels that pass over it.
export const SIMD_BLOCK = 8192
// Bytes per slot: a block of float64.
const SLOT = SIMD_BLOCK * 8

type Instance = { exports: Exports; bytes: Uint8Array; words: Int32Array; slots: number }

let instance: Instance | null = null

// One instance per thread, grown to hold `slots` blocks.
function kernels(slots: number): Instance {
  if (!instance) {
    // Operands are copied in as host words and the module reads them as little-endian.
    if (!LITTLE_ENDIAN) throw new Error('the merge kernels need a little-endian host')
    const module = new WebAssembly.Module(readFileSync(new URL('./simd-kernels.wasm', import.meta.url)))
    const exports = new WebAssembly.Instance(module).exports as unknown as Exports
    instance = { exports, bytes: new Uint8Array(0), words: new Int32Array(0), slots: 0 }
  }
  if (instance.slots < slots) {
    const memory = instance.exports.memory
    const needed = slots * SLOT - memory.buffer.byteLength
    if (needed > 0) memory.grow(Math.ceil(needed / 65536))
    instance.bytes = new Uint8Array(memory.buffer)
    instance.words = new Int32Array(memory.buffer)
    instance.slots = slots
  }
  return instance
}

const padded = (n: number) => (n + 7) & ~7

const wordsOf = (array: Float32Array) => new Int32Array(array.buffer, array.byteOffset, array.length)

// bf16 `bytes` (any alignment) into out[outStart, …), one element per two
// bytes; returns how many values are NaN or infinite.
export function decodeBf16Simd(bytes: Uint8Array, out: Float32Array, outStart: number): number {
  const n = bytes.byteLength >> 1
  const { exports, bytes: heap, words } = kernels(2)
  const outWords = wordsOf(out)
  let count = 0
  for (let at = 0; at < n; at += SIMD_BLOCK) {
    const size = Math.min(SIMD_BLOCK, n - at)
    heap.set(bytes.subarray(at * 2, (at + size) * 2), 0)
    // The padding decodes as zeros: finite, and never copied out.
    heap.fill(0, size * 2, padded(size) * 2)
    count += exports.decodeBf16(0, SLOT, padded(size))
    outWords.set(words.subarray(SLOT / 4, SLOT / 4 + size), outStart + at)
  }
  return count
}

// How many of array[start, end) are NaN or infinite.
export function countNonFiniteSimd(array: Float32Array, start: number, end: number): number {
  const { exports, words } = kernels(1)
  const source = wordsOf(array)
  let count = 0
  for (let at = start; at < end; at += SIMD_BLOCK) {
    const size = Math.min(SIMD_BLOCK, end - at)
    words.set(source.subarray(at, at + size), 0)
    words.fill(0, size, padded(size))
    count += exports.countNonFinite(0, padded(size))
  }
  return count
}

// values[start, end) as bf16 into `out`, two bytes each from its first byte.
export function encodeBf16Simd(values: Float32Array, start: number, end: number, out: Uint8Array): void {
  const { exports, bytes: heap, words } = kernels(2)
  const valueWords = wordsOf(values)
  for (let at = start; at < end; at += SIMD_BLOCK) {
    const size = Math.min(SIMD_BLOCK, end - at)
    words.set(valueWords.subarray(at, at + size), 0)
    exports.encodeBf16(0, SLOT, padded(size))
    out.set(heap.subarray(SLOT, SLOT + size * 2), (at - start) * 2)
  }
}

// out[i] = Σ coefficients[m] × arrays[m][i] over [start, end), each partial
// sum rounded to float32. `out` may be one of the arrays.
export function linearSimd(arrays: Float32Array[], coefficients: ArrayLike<number>, out: Float32Array, start: number, end: number): void {
  const { exports, words } = kernels(2)
  const outWords = wordsOf(out)
  const sources = arrays.map(wordsOf)
  for (let at = start; at < end; at += SIMD_BLOCK) {
    const size = Math.min(SIMD_BLOCK, end - at)
    const n = padded(size)
    for (const [m, source] of sources.entries()) {
      words.set(source.subarray(at, at + size), 0)
      if (m === 0) exports.linearFirst(0, SLOT, coefficients[0]!, n)
      else exports.linearAdd(0, SLOT, coefficients[m]!, n)
    }
    outWords.set(words.subarray(SLOT / 4, SLOT / 4 + size), at)
  }
}

// Task arithmetic without pruning or sign election over [start, end):
// out = base + (Σ weights[m] × f32(models[m] − base)) / divisor × λ, the sum
// in float64. `out` may be `base`.
export function taskSumSimd(
  models: Float32Array[],
  weights: readonly number[],
  base: Float32Array,
  out: Float32Array,
  start: number,
  end: number,
  divisor: number,
  lambda: number,
): void {
  // Slots: 0 base, 1 a model, 2 the float64 sum, 3 the output.
  const { exports, words } = kernels(4)
  const outWords = wordsOf(out)
  const baseWords = wordsOf(base)
  const sources = models.map(wordsOf)
  const [BASE, MODEL, SUM, OUT] = [0, SLOT, 2 * SLOT, 3 * SLOT]
  for (let at = start; at < end; at += SIMD_BLOCK) {
    const size = Math.min(SIMD_BLOCK, end - at)
    const n = padded(size)
    words.set(baseWords.subarray(at, at + size), BASE / 4)
    for (const [m, source] of sources.entries()) {
      words.set(source.subarray(at, at + size), MODEL / 4)
      if (m === 0) exports.taskFirst(MODEL, BASE, SUM, weights[0]!, n)
      else exports.taskAdd(MODEL, BASE, SUM, weights[m]!, n)
    }
    exports.taskFinish(BASE, SUM, OUT, divisor, lambda, n)
    outWords.set(words.subarray(OUT / 4, OUT / 4 + size), at)
  }
}
