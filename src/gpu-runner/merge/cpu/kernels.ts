import { decodeToFloat32, encodedSize, encodeFromFloat32, type ReadableFloatDtype, type WritableDtype } from '../../tensors/dtype-codec.ts'
import { SAFETENSORS_DTYPE_SIZES } from '../../../shared/safetensors-header.ts'
import { countNonFiniteSimd, decodeBf16Simd, encodeBf16Simd, linearSimd, taskSumSimd } from './simd-kernels.ts'

// The CPU kernels: each works on one chunk of a tensor (an element range, or
// a row range for row-wise work) over float32 arrays that may live in shared
// memory, and returns a small result the caller combines in chunk order. The
// same functions run inline and inside worker threads, so the thread count
// never changes a result.

export type Layout = { kind: 'flat' } | { kind: 'rows'; cols: number } | { kind: 'columns'; cols: number }

export type KernelCall =
  | { op: 'sub'; start: number; end: number; array: Float32Array; base: Float32Array }
  | { op: 'subHistHigh'; start: number; end: number; array: Float32Array; base: Float32Array }
  | { op: 'encode'; start: number; end: number; values: Float32Array; dtype: WritableDtype; out: Uint8Array; first: number }
  | { op: 'decode'; start: number; end: number; bytes: Uint8Array; dtype: ReadableFloatDtype; out: Float32Array; first: number }
  | { op: 'nonFinite'; start: number; end: number; arrays: Float32Array[] }
  | { op: 'histHigh'; start: number; end: number; array: Float32Array }
  | { op: 'histLow'; start: number; end: number; array: Float32Array; high: number }
  | { op: 'rankMask'; start: number; end: number; array: Float32Array; lo: RankBound | null; hi: RankBound | null }
  | { op: 'bernoulliMask'; start: number; end: number; array: Float32Array; key: number; p: number }
  | { op: 'dellaMask'; start: number; end: number; array: Float32Array; cols: number; key: number; density: number; epsilon: number }
  | { op: 'scale'; start: number; end: number; array: Float32Array; factor: number }
  | { op: 'gram'; start: number; end: number; arrays: Float32Array[]; base: Float32Array | null; layout: Layout }
  | { op: 'affine'; start: number; end: number; arrays: Float32Array[]; coefficients: Float64Array; layout: Layout; out: Float32Array }
  | {
      op: 'taskCombine'
      start: number
      end: number
      deltas: Float32Array[]
      weights: number[]
      base: Float32Array
      out: Float32Array
      consensus: boolean
      normalize: boolean
      lambda: number
      // `deltas` are the models themselves: each task vector is taken on the fly.
      fromInputs?: boolean
      // Per model, the rank range it keeps in this chunk: pruned inside the combine.
      masks?: RankMask[]
    }

// The bound of a kept rank range: elements whose |value| bits are `bits` hold
// ascending stable positions `offset`, `offset + 1`, … in this chunk, in index
// order; `position` is the first (lo) or last (hi) position kept.
export type RankBound = { bits: number; offset: number; position: number }
export type RankMask = { lo: RankBound | null; hi: RankBound | null }

export type KernelResult = null | number[] | Uint32Array | Float64Array

// A counter-based uniform draw in [0, 1): the same for an element whatever
// chunk or thread computes it. murmur3's finaliser over the element index
// mixed with a per-tensor, per-model key.
export function mix32(x: number): number {
  x ^= x >>> 16
  x = Math.imul(x, 0x85ebca6b)
  x ^= x >>> 13
  x = Math.imul(x, 0xc2b2ae35)
  x ^= x >>> 16
  return x >>> 0
}

export function uniformAt(key: number, index: number): number {
  return (mix32((Math.imul(index, 0x9e3779b1) ^ key) >>> 0) >>> 8) / 16777216
}

// Each op is its own function so the JIT specialises every loop on its own;
// one large switch with all the loops inside optimised them together, and
// four times slower.
function sub({ start, end, array, base }: Extract<KernelCall, { op: 'sub' }>): null {
  for (let i = start; i < end; i++) array[i] = array[i]! - base[i]!
  return null
}

// The task vector and the first histogram of its magnitudes in one pass.
function subHistHigh({ start, end, array, base }: Extract<KernelCall, { op: 'subHistHigh' }>): Uint32Array {
  const bits = new Int32Array(array.buffer, array.byteOffset, array.length)
  const counts = interleavedCounts()
  for (let i = start; i < end; i++) {
    array[i] = array[i]! - base[i]!
    counts[((i & 3) << 16) | ((bits[i]! & 0x7fffffff) >>> 16)]!++
  }
  return foldCounts(counts)
}

// Four histograms side by side, element i counting into the (i mod 4)th:
// neighbouring values often share a bin (bf16 inputs have few distinct
// values), and one counter incremented back to back stalls on itself.
function interleavedCounts(): Uint32Array {
  return new Uint32Array(4 << 16)
}

function foldCounts(counts: Uint32Array): Uint32Array {
  const out = counts.slice(0, 65536)
  for (let lane = 1; lane < 4; lane++) for (let b = 0; b < 65536; b++) out[b]! += counts[(lane << 16) | b]!
  return out
}

// Elements [start, end) of `values` into `out`, whose first byte holds element `first`.
function encode({ start, end, values, dtype, out, first }: Extract<KernelCall, { op: 'encode' }>): null {
  const size = encodedSize(dtype, 1)
  const target = out.subarray((start - first) * size, (end - first) * size)
  if (dtype === 'BF16') encodeBf16Simd(values, start, end, target)
  else encodeFromFloat32(dtype, values.subarray(start, end), target)
  return null
}

// Elements [start, end) of `out` from `bytes`, whose first byte holds element
// `first`; returns how many are NaN or infinite (bf16 counted as it is
// written, other dtypes over the chunk just written, while it is in cache).
function decode({ start, end, bytes, dtype, out, first }: Extract<KernelCall, { op: 'decode' }>): number[] {
  const size = SAFETENSORS_DTYPE_SIZES[dtype]
  const from = (start - first) * size
  if (dtype === 'BF16') return [decodeBf16Simd(bytes.subarray(from, from + (end - start) * 2), out, start)]
  decodeToFloat32(dtype, bytes.subarray(from, (end - first) * size), out, start)
  return [countNonFiniteSimd(out, start, end)]
}

function nonFinite({ start, end, arrays }: Extract<KernelCall, { op: 'nonFinite' }>): number[] {
  return arrays.map((array) => countNonFiniteSimd(array, start, end))
}

function histHigh({ start, end, array }: Extract<KernelCall, { op: 'histHigh' }>): Uint32Array {
  const counts = interleavedCounts()
  const bits = new Int32Array(array.buffer, array.byteOffset, array.length)
  for (let i = start; i < end; i++) counts[((i & 3) << 16) | ((bits[i]! & 0x7fffffff) >>> 16)]!++
  return foldCounts(counts)
}

function histLow({ start, end, array, high }: Extract<KernelCall, { op: 'histLow' }>): Uint32Array {
  const counts = new Uint32Array(65536)
  const bits = new Int32Array(array.buffer, array.byteOffset, array.length)
  for (let i = start; i < end; i++) {
    const b = bits[i]! & 0x7fffffff
    if (b >>> 16 === high) counts[b & 0xffff]!++
  }
  return counts
}

// TIES's hottest loop, branch-free but for values equal to a bound (which
// take their running position): (x - y) >>> 31 is 1 exactly when x < y for
// these 31-bit values, a comparison the JIT cannot turn into a branch. An
// absent bound is one no value can equal.
function rankMask({ start, end, array, lo, hi }: Extract<KernelCall, { op: 'rankMask' }>): number[] {
  const bits = new Int32Array(array.buffer, array.byteOffset, array.length)
  const loBits = lo ? lo.bits : -1
  const hiBits = hi ? hi.bits : 0x80000000
  const loPosition = lo ? lo.position : 0
  const hiPosition = hi ? hi.position : 0
  let seenLo = lo ? lo.offset : 0
  let seenHi = hi ? hi.offset : 0
  let before = 0
  let after = 0
  for (let i = start; i < end; i++) {
    const b = bits[i]! & 0x7fffffff
    let keep = ((loBits - b) >>> 31) & ((b - hiBits) >>> 31)
    if (b === loBits) keep = (seenLo++ >= loPosition ? 1 : 0) & (b === hiBits ? (seenHi++ <= hiPosition ? 1 : 0) : (b - hiBits) >>> 31)
    else if (b === hiBits) keep = ((loBits - b) >>> 31) & (seenHi++ <= hiPosition ? 1 : 0)
    const x = array[i]!
    const magnitude = Math.abs(x)
    before += magnitude
    after += magnitude * keep
    array[i] = x * keep
  }
  return [before, after]
}

function bernoulliMask({ start, end, array, key, p }: Extract<KernelCall, { op: 'bernoulliMask' }>): number[] {
  let before = 0
  let after = 0
  for (let i = start; i < end; i++) {
    const x = array[i]!
    const magnitude = Math.abs(x)
    const keep = +(uniformAt(key, i) < p)
    before += magnitude
    after += magnitude * keep
    array[i] = x * keep
  }
  return [before, after]
}

// Rows [start, end): within a row, the keep probability rises linearly with
// the magnitude's rank, from density - ε to density + ε. Ranks come from a
// stable radix sort of the |value| bits (three 11-bit digits), which orders
// ties by index as a stable argsort does; sorting value-then-index float64
// keys gave the same order at several times the cost.
function dellaMask({ start, end, array, cols, key, density, epsilon }: Extract<KernelCall, { op: 'dellaMask' }>): number[] {
  const keys = new Int32Array(cols)
  const order = new Int32Array(cols)
  const scratch = new Int32Array(cols)
  const counts = new Int32Array(3 * RADIX)
  const keepRow = new Float64Array(cols)
  const bits = new Int32Array(array.buffer, array.byteOffset, array.length)
  let before = 0
  let after = 0
  for (let row = start; row < end; row++) {
    const offset = row * cols
    // |value| as float bits: for non-negative floats the bits order like the values.
    for (let c = 0; c < cols; c++) keys[c] = bits[offset + c]! & 0x7fffffff
    radixOrder(keys, cols, order, scratch, counts)
    for (let rank = 0; rank < cols; rank++) {
      const c = order[rank]!
      const rankNorm = cols > 1 ? rank / (cols - 1) : 0
      keepRow[c] = density - epsilon + rankNorm * 2 * epsilon
    }
    for (let c = 0; c < cols; c++) {
      const i = offset + c
      const x = array[i]!
      const magnitude = Math.abs(x)
      const keep = +(uniformAt(key, i) < keepRow[c]!)
      before += magnitude
      after += magnitude * keep
      array[i] = x * keep
    }
  }
  return [before, after]
}

const RADIX = 2048

// Indices 0..cols-1 into `order`, ascending by keys (31-bit, non-negative),
// equal keys by index: an LSD radix sort, each pass stable.
function radixOrder(keys: Int32Array, cols: number, order: Int32Array, scratch: Int32Array, counts: Int32Array): void {
  counts.fill(0)
  for (let c = 0; c < cols; c++) {
    const k = keys[c]!
    counts[k & 2047]!++
    counts[RADIX + ((k >>> 11) & 2047)]!++
    counts[2 * RADIX + (k >>> 22)]!++
  }
  for (let pass = 0; pass < 3; pass++) {
    let sum = 0
    for (let b = pass * RADIX; b < (pass + 1) * RADIX; b++) {
      const count = counts[b]!
      counts[b] = sum
      sum += count
    }
  }
  for (let c = 0; c < cols; c++) order[counts[keys[c]! & 2047]!++] = c
  for (let r = 0; r < cols; r++) {
    const c = order[r]!
    scratch[counts[RADIX + ((keys[c]! >>> 11) & 2047)]!++] = c
  }
  for (let r = 0; r < cols; r++) {
    const c = scratch[r]!
    order[counts[2 * RADIX + (keys[c]! >>> 22)]!++] = c
  }
}

function scale({ start, end, array, factor }: Extract<KernelCall, { op: 'scale' }>): null {
  for (let i = start; i < end; i++) array[i] = array[i]! * factor
  return null
}

export function runKernel(call: KernelCall): KernelResult {
  switch (call.op) {
    case 'sub':
      return sub(call)
    case 'subHistHigh':
      return subHistHigh(call)
    case 'encode':
      return encode(call)
    case 'decode':
      return decode(call)
    case 'nonFinite':
      return nonFinite(call)
    case 'histHigh':
      return histHigh(call)
    case 'histLow':
      return histLow(call)
    case 'rankMask':
      return rankMask(call)
    case 'bernoulliMask':
      return bernoulliMask(call)
    case 'dellaMask':
      return dellaMask(call)
    case 'scale':
      return scale(call)
    case 'gram':
      return gram(call.arrays, call.base, call.layout, call.start, call.end)
    case 'affine':
      affine(call.arrays, call.coefficients, call.layout, call.out, call.start, call.end)
      return null
    case 'taskCombine':
      taskCombine(call)
      return null
  }
}

// Pairwise dot products (i <= j, row-major over the upper triangle) of the
// arrays, minus `base` when given, per vector of the layout. Flat and rows
// chunks cover elements and rows; a columns chunk covers rows and returns
// partial sums for every column.
function gram(arrays: Float32Array[], base: Float32Array | null, layout: Layout, start: number, end: number): Float64Array {
  const k = arrays.length
  const pairs = (k * (k + 1)) / 2
  const values = new Float64Array(k)
  const accumulate = (sums: Float64Array, at: number, i: number) => {
    const b = base ? base[i]! : 0
    for (let m = 0; m < k; m++) values[m] = arrays[m]![i]! - b
    let p = at
    for (let m = 0; m < k; m++) for (let n = m; n < k; n++) sums[p++]! += values[m]! * values[n]!
  }
  if (layout.kind === 'flat') {
    const sums = new Float64Array(pairs)
    for (let i = start; i < end; i++) accumulate(sums, 0, i)
    return sums
  }
  const { cols } = layout
  if (layout.kind === 'rows') {
    const sums = new Float64Array((end - start) * pairs)
    for (let row = start; row < end; row++) for (let c = 0; c < cols; c++) accumulate(sums, (row - start) * pairs, row * cols + c)
    return sums
  }
  const sums = new Float64Array(cols * pairs)
  for (let row = start; row < end; row++) for (let c = 0; c < cols; c++) accumulate(sums, c * pairs, row * cols + c)
  return sums
}

// out = Σ coefficient[vector][m] × arrays[m], with one coefficient set per
// vector of the layout (one for flat).
function affine(arrays: Float32Array[], coefficients: Float64Array, layout: Layout, out: Float32Array, start: number, end: number): void {
  const k = arrays.length
  // Each partial sum is rounded to float32, as it was when the sum was built
  // up in `out` one array at a time, so the result is the same to the bit.
  if (layout.kind === 'flat') {
    linearSimd(arrays, coefficients, out, start, end)
    return
  }
  const { cols } = layout
  for (let row = start; row < end; row++) {
    for (let c = 0; c < cols; c++) {
      const i = row * cols + c
      const at = (layout.kind === 'rows' ? row : c) * k
      let sum = 0
      for (let m = 0; m < k; m++) sum += coefficients[at + m]! * arrays[m]![i]!
      out[i] = sum
    }
  }
}

// mergekit's generalized task arithmetic after sparsification: weighted
// deltas, an optional sign election by the sign of their sum (ties go to +),
// the disjoint mean over the agreeing ones, λ, and the base added back.
// The combine loop is generated once per model count: with every delta, weight
// and running sum in a local, the JIT keeps them in registers, which runs
// about twice as fast as a loop over an array of arrays or per-delta passes
// over float64 accumulators. Sums run in model order, as mergekit's do.
type Combine = (
  deltas: Float32Array[],
  weights: number[],
  base: Float32Array,
  out: Float32Array,
  start: number,
  end: number,
  normalize: boolean,
  lambda: number,
  masks: RankMask[] | undefined,
  // Without the sign election: plainDivisor(weights, normalize).
  divisor: number,
) => void

const combines = new Map<string, Combine>()

// The divisor of the combine without the sign election: the weights' sum
// under normalize (1 when it is about 0, as mergekit guards it), else 1.
export function plainDivisor(weights: readonly number[], normalize: boolean): number {
  if (!normalize) return 1
  const total = weights.reduce((a, b) => a + b, 0)
  return Math.abs(total) < 1e-8 ? 1 : total
}

// The sign election's three comparisons per element (the sum's sign, each
// delta's agreement, a zero divisor) are coin flips on real task vectors, and
// as branches they cost three to four times the rest of the loop. With every
// weight positive and not tiny, a weighted delta is zero exactly when its
// float32 is ±0 and has the float32's sign, so agreement is bit arithmetic on
// the delta's bits against the sum's sign bit (read through a float64
// scratch), and the divisor is zero exactly when nothing agrees. A sum of -0
// or NaN reads as negative where the comparison says +, which changes
// nothing: -0 means every delta is zero, and NaN makes the output NaN either
// way. Other weights take the comparisons.
const FAST_WEIGHT_MIN = 1e-30

// Without sparsification a task vector is only ever read once, by the
// combine: taking model - base there, rounded to float32 as the stored delta
// was, saves a pass that wrote every delta out and read it back (fromInputs;
// the SIMD kernels run that case). Likewise a magnitude prune without rescale
// is applied inside the combine (masks: each model's rank bounds for this
// chunk, the same arithmetic as rankMask), instead of a pass per model that
// zeroed the pruned values in memory before the combine read them back.
function combineFor(k: number, consensus: boolean, branchFree: boolean, masked: boolean): Combine {
  const key = `${k}:${consensus}:${branchFree}:${masked}`
  const cached = combines.get(key)
  if (cached) return cached
  const m = Array.from({ length: k }, (_, i) => i)
  const list = (item: (i: number) => string, separator: string) => m.map(item).join(separator)
  const lines = (item: (i: number) => string) => list(item, '\n')
  const needsBits = masked || branchFree
  let prologue = `const [${list((i) => `d${i}`, ', ')}] = deltas\nconst [${list((i) => `w${i}`, ', ')}] = weights\n`
  if (needsBits) prologue += lines((i) => `const b${i} = new Int32Array(d${i}.buffer, d${i}.byteOffset, d${i}.length)`)
  if (masked) {
    prologue += `\n${lines(
      (i) => `const lo${i} = masks[${i}].lo, hi${i} = masks[${i}].hi
      const lb${i} = lo${i} ? lo${i}.bits : -1, hb${i} = hi${i} ? hi${i}.bits : 0x80000000
      const lp${i} = lo${i} ? lo${i}.position : 0, hp${i} = hi${i} ? hi${i}.position : 0
      let sl${i} = lo${i} ? lo${i}.offset : 0, sh${i} = hi${i} ? hi${i}.offset : 0`,
    )}`
  }
  // x: the weighted (pruned) delta; e, g: its float32 bits and |bits|; k: kept.
  const load = (i: number) => {
    if (!masked) return `const x${i} = w${i} * d${i}[i]${needsBits ? `\nconst e${i} = b${i}[i], g${i} = e${i} & 0x7fffffff` : ''}`
    return `const e${i} = b${i}[i], g${i} = e${i} & 0x7fffffff
      let k${i} = ((lb${i} - g${i}) >>> 31) & ((g${i} - hb${i}) >>> 31)
      if (g${i} === lb${i}) k${i} = (sl${i}++ >= lp${i} ? 1 : 0) & (g${i} === hb${i} ? (sh${i}++ <= hp${i} ? 1 : 0) : (g${i} - hb${i}) >>> 31)
      else if (g${i} === hb${i}) k${i} = ((lb${i} - g${i}) >>> 31) & (sh${i}++ <= hp${i} ? 1 : 0)
      const x${i} = w${i} * (d${i}[i] * k${i})`
  }
  // Zero agrees with neither sign, and a zero sum counts as +.
  // Dividing by 1 and multiplying by 1 change no float, NaN and -0 included:
  // the common case (no normalize, λ = 1) runs a loop without either, which
  // is most of what separated this combine's speed from linear's.
  const body = !consensus
    ? `${prologue}
      if (divisor === 1 && lambda === 1) {
        for (let i = start; i < end; i++) {
          ${lines(load)}
          out[i] = base[i] + (${list((i) => `x${i}`, ' + ')})
        }
        return
      }
      for (let i = start; i < end; i++) {
        ${lines(load)}
        out[i] = base[i] + ((${list((i) => `x${i}`, ' + ')}) / divisor) * lambda
      }`
    : branchFree
      ? `${prologue}
      const scratch = new Float64Array(1)
      const scratchBits = new Int32Array(scratch.buffer)
      for (let i = start; i < end; i++) {
        ${lines(load)}
        scratch[0] = ${list((i) => `x${i}`, ' + ')}
        const negative = scratchBits[1] >>> 31
        ${lines((i) => `const a${i} = ((g${i} + 0x7fffffff) >>> 31)${masked ? ` & k${i}` : ''} & (1 ^ (e${i} >>> 31) ^ negative)`)}
        const mixed = ${list((i) => `x${i} * a${i}`, ' + ')}
        const divisor = ${list((i) => `w${i} * a${i}`, ' + ')} + (1 ^ (${list((i) => `a${i}`, ' | ')}))
        out[i] = base[i] + (normalize ? mixed / divisor : mixed) * lambda
      }`
      : `${prologue}
      for (let i = start; i < end; i++) {
        ${lines(load)}
        const sign = ${list((i) => `x${i}`, ' + ')} >= 0 ? 1 : -1
        ${lines((i) => `const a${i} = +(x${i} * sign > 0)`)}
        const mixed = ${list((i) => `x${i} * a${i}`, ' + ')}
        let divisor = ${list((i) => `w${i} * a${i}`, ' + ')}
        if (divisor === 0) divisor = 1
        out[i] = base[i] + (normalize ? mixed / divisor : mixed) * lambda
      }`
  const combine = new Function('deltas', 'weights', 'base', 'out', 'start', 'end', 'normalize', 'lambda', 'masks', 'divisor', body) as Combine
  combines.set(key, combine)
  return combine
}

function taskCombine(call: Extract<KernelCall, { op: 'taskCombine' }>): void {
  const { deltas, weights, base, out, consensus, normalize, lambda, start, end, masks } = call
  const divisor = plainDivisor(weights, normalize)
  if (call.fromInputs === true) {
    if (consensus || masks) throw new Error('taskCombine: pruning and the sign election need stored task vectors')
    taskSumSimd(deltas, weights, base, out, start, end, divisor, lambda)
    return
  }
  const branchFree = consensus && weights.every((w) => w >= FAST_WEIGHT_MIN && w < Infinity)
  combineFor(deltas.length, consensus, branchFree, masks !== undefined)(deltas, weights, base, out, start, end, normalize, lambda, masks, divisor)
}
