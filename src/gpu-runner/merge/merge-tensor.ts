import { METHOD_SPECS, type MergeMethodName, type ParameterValue } from '../../shared/merge-methods.ts'
import type { KernelCall, KernelResult, Layout, RankBound, RankMask } from './cpu/kernels.ts'
import { mix32 } from './cpu/kernels.ts'
import type { KernelRunner } from './cpu/kernel-runner.ts'

// One output tensor's merge, as mergekit's methods compute it, on float32
// arrays in shared memory. The work is cut into fixed-size chunks whatever
// the thread count, and partial sums are combined in chunk order, so a result
// does not depend on how many threads computed it. Inputs are consumed: task
// vectors are computed in place and the result is written over an input (the
// base for task arithmetic, the first operand otherwise), so a merge needs no
// memory beyond its inputs.

export type MergeInput = { model: string; data: Float32Array; params: Record<string, ParameterValue | undefined> }

export type TensorMerge = {
  name: string
  method: MergeMethodName
  shape: number[]
  base: Float32Array | null
  inputs: MergeInput[]
  params: Record<string, ParameterValue | undefined>
  seed: number
}

export class MergeError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'MergeError'
  }
}

export const CHUNK_ELEMENTS = 1 << 20

type Range = { start: number; end: number }

function elementChunks(n: number): Range[] {
  const chunks: Range[] = []
  for (let start = 0; start < n; start += CHUNK_ELEMENTS) chunks.push({ start, end: Math.min(n, start + CHUNK_ELEMENTS) })
  return chunks
}

function rowChunks(rows: number, cols: number): Range[] {
  const step = Math.max(1, Math.floor(CHUNK_ELEMENTS / Math.max(1, cols)))
  const chunks: Range[] = []
  for (let start = 0; start < rows; start += step) chunks.push({ start, end: Math.min(rows, start + step) })
  return chunks
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1)

function asNumber(value: ParameterValue | undefined, name: string, tensor: string): number {
  const number = Number(value)
  if (value === undefined || !Number.isFinite(number)) throw new MergeError(`parameter ${name} for ${tensor} must be a number, got ${JSON.stringify(value)}`)
  return number
}

function asBoolean(value: ParameterValue | undefined): boolean {
  return value === true || value === 1 || value === 'true'
}

// FNV-1a over the tensor name: with the seed and the model's position it keys
// each task vector's random stream.
function nameHash(name: string): number {
  let hash = 0x811c9dc5
  for (const byte of new TextEncoder().encode(name)) hash = Math.imul(hash ^ byte, 0x01000193)
  return hash >>> 0
}

export function randomKey(seed: number, tensorName: string, modelIndex: number): number {
  return mix32((nameHash(tensorName) + Math.imul(seed, 0x9e3779b1) + Math.imul(modelIndex + 1, 0x85ebca6b)) >>> 0)
}

async function runChunks(runner: KernelRunner, chunks: Range[], make: (range: Range, index: number) => KernelCall): Promise<KernelResult[]> {
  return runner.run(chunks.map((range, index) => make(range, index)))
}

function sumPairs(results: KernelResult[], length: number): number[] {
  const total = new Array<number>(length).fill(0)
  for (const result of results) for (let i = 0; i < length; i++) total[i]! += (result as number[] | Float64Array)[i]!
  return total
}

// The |value| bits at ascending stable positions, with each chunk's starting
// position among equal values: a two-pass radix selection over the float
// bits (high 16, then low 16), O(n), no sort.
async function rankBounds(
  runner: KernelRunner,
  array: Float32Array,
  chunks: Range[],
  positions: number[],
  knownHighs?: Uint32Array[],
): Promise<{ bits: number; position: number; offsets: number[] }[]> {
  const highs = knownHighs ?? ((await runChunks(runner, chunks, (range) => ({ op: 'histHigh', ...range, array }))) as Uint32Array[])
  const merged = new Float64Array(65536)
  for (const counts of highs) for (let b = 0; b < 65536; b++) merged[b]! += counts[b]!
  const lowCache = new Map<number, Uint32Array[]>()
  const bounds = []
  for (const position of positions) {
    let before = 0
    let high = 0
    while (before + merged[high]! <= position) before += merged[high++]!
    let lows = lowCache.get(high)
    if (!lows) {
      lows = (await runChunks(runner, chunks, (range) => ({ op: 'histLow', ...range, array, high }))) as Uint32Array[]
      lowCache.set(high, lows)
    }
    const lowMerged = new Float64Array(65536)
    for (const counts of lows) for (let b = 0; b < 65536; b++) lowMerged[b]! += counts[b]!
    let low = 0
    while (before + lowMerged[low]! <= position) before += lowMerged[low++]!
    let offset = before
    const offsets = lows.map((counts) => {
      const at = offset
      offset += counts[low]!
      return at
    })
    bounds.push({ bits: ((high << 16) | low) >>> 0, position, offsets })
  }
  return bounds
}

// Per chunk, the bounds of the elements whose ascending stable rank by
// |value| lies in [lo, hi] (none when hi < lo).
async function rankMasks(runner: KernelRunner, array: Float32Array, lo: number, hi: number, highs?: Uint32Array[]): Promise<RankMask[]> {
  const n = array.length
  const chunks = elementChunks(n)
  if (hi < lo) {
    // No |value| has bits above 0x7fffffff, so every element falls below this bound.
    const none: RankBound = { bits: 0x80000000, position: 0, offset: 0 }
    return chunks.map(() => ({ lo: none, hi: null }))
  }
  const positions = [...(lo > 0 ? [lo] : []), ...(hi < n - 1 ? [hi] : [])]
  const bounds = await rankBounds(runner, array, chunks, positions, highs)
  const loBound = lo > 0 ? bounds[0]! : null
  const hiBound = hi < n - 1 ? bounds.at(-1)! : null
  const pick = (bound: typeof loBound, index: number): RankBound | null =>
    bound ? { bits: bound.bits, position: bound.position, offset: bound.offsets[index]! } : null
  return chunks.map((_, index) => ({ lo: pick(loBound, index), hi: pick(hiBound, index) }))
}

// Keeps the elements whose ascending stable rank by |value| lies in
// [lo, hi] (nothing when hi < lo), zeroing the rest; returns the L1 norms
// before and after.
async function keepRankRange(runner: KernelRunner, array: Float32Array, lo: number, hi: number, highs?: Uint32Array[]): Promise<number[]> {
  const masks = await rankMasks(runner, array, lo, hi, highs)
  return sumPairs(await runChunks(runner, elementChunks(array.length), (range, index) => ({ op: 'rankMask', ...range, array, ...masks[index]! })), 2)
}

// The rank range a magnitude prune keeps, as mergekit computes it.
function keptRanks(job: TensorMerge, input: MergeInput): { lo: number; hi: number } {
  const n = input.data.length
  const density = asNumber(input.params.density, 'density', job.name)
  if (METHOD_SPECS[job.method].sparsification === 'magnitude') {
    // mergekit keeps int(density × n) values; none at all when that is 0.
    return { lo: n - Math.trunc(density * n), hi: n - 1 }
  }
  const gamma = asNumber(input.params.gamma, 'gamma', job.name)
  let top = Math.trunc(gamma * n)
  let bottom = n - Math.trunc(density * n) - top
  if (bottom < 0) {
    top += bottom
    bottom = 0
  }
  // mergekit slices [bottom:-top], which keeps nothing when top is 0; this keeps [bottom, n).
  return { lo: bottom, hi: n - top - 1 }
}

// Whether sparsify changes an input's task vector at all.
function prunes(job: TensorMerge, input: MergeInput): boolean {
  return METHOD_SPECS[job.method].sparsification !== undefined && asNumber(input.params.density, 'density', job.name) < 1
}

// Whether an input's pruning ranks magnitudes (and so wants their histogram).
function ranksMagnitudes(job: TensorMerge, input: MergeInput): boolean {
  const method = METHOD_SPECS[job.method].sparsification
  return (method === 'magnitude' || method === 'magnitude_outliers') && asNumber(input.params.density, 'density', job.name) < 1
}

async function sparsify(
  runner: KernelRunner,
  job: TensorMerge,
  input: MergeInput,
  modelIndex: number,
  rescale: boolean,
  highs?: Uint32Array[],
): Promise<void> {
  const method = METHOD_SPECS[job.method].sparsification
  if (!method) return
  const data = input.data
  const n = data.length
  const density = asNumber(input.params.density, 'density', job.name)
  if (density >= 1) return
  let sums: number[]
  switch (method) {
    case 'magnitude':
    case 'magnitude_outliers': {
      const { lo, hi } = keptRanks(job, input)
      sums = await keepRankRange(runner, data, lo, hi, highs)
      break
    }
    case 'random': {
      const key = randomKey(job.seed, job.name, modelIndex)
      sums = sumPairs(await runChunks(runner, elementChunks(n), (range) => ({ op: 'bernoulliMask', ...range, array: data, key, p: density })), 2)
      break
    }
    case 'della_magprune': {
      const epsilon = asNumber(input.params.epsilon, 'epsilon', job.name)
      if (density <= 0) {
        data.fill(0)
        return
      }
      if (density + epsilon >= 1 || density - epsilon <= 0) throw new MergeError(`${job.name}: epsilon must keep density ± epsilon inside (0, 1), got density ${density} and epsilon ${epsilon}`)
      if (job.shape.length > 2) throw new MergeError(`${job.name}: della ranks rows of 1- or 2-dimensional tensors, this one has shape [${job.shape.join(', ')}]`)
      const cols = job.shape.length === 2 ? job.shape[1]! : n
      if (cols >= 2097152) throw new MergeError(`${job.name}: della ranks rows of fewer than 2097152 values, this row has ${cols}`)
      const key = randomKey(job.seed, job.name, modelIndex)
      const rows = cols === 0 ? 0 : n / cols
      sums = sumPairs(
        await runChunks(runner, rowChunks(rows, cols), (range) => ({ op: 'dellaMask', ...range, array: data, cols, key, density, epsilon })),
        2,
      )
      break
    }
  }
  // mergekit's rescale: match the L1 norm the task vector had before pruning.
  const [before, after] = sums
  if (!rescale || before! < 1e-7 || after! < 1e-7) return
  const factor = before! / after!
  await runChunks(runner, elementChunks(n), (range) => ({ op: 'scale', ...range, array: data, factor }))
}

async function taskArithmetic(runner: KernelRunner, job: TensorMerge): Promise<Float32Array> {
  const base = job.base!
  const chunks = elementChunks(base.length)
  if (job.inputs.length === 0) return base
  const consensus = METHOD_SPECS[job.method].consensus === true
  const weights = job.inputs.map((input) => asNumber(input.params.weight, 'weight', `${job.name} of ${input.model}`))
  const combine = (fromInputs: boolean, masks?: (chunk: number) => RankMask[]) =>
    runChunks(runner, chunks, (range, index) => ({
      op: 'taskCombine',
      ...range,
      deltas: job.inputs.map((input) => input.data),
      weights,
      base,
      // Each element of base is read before its own output is written: base can take the result.
      out: base,
      consensus,
      normalize: asBoolean(job.params.normalize),
      lambda: asNumber(job.params.lambda ?? 1, 'lambda', job.name),
      fromInputs,
      ...(masks ? { masks: masks(index) } : {}),
    }))
  // Nothing to prune and no sign election: the task vectors are taken inside the combine.
  if (!consensus && !job.inputs.some((input) => prunes(job, input))) {
    await combine(true)
    return base
  }
  // Methods that rank magnitudes get the first histogram in the same pass as the task vector.
  const highs = new Map<MergeInput, Uint32Array[]>()
  for (const input of job.inputs) {
    if (ranksMagnitudes(job, input)) {
      highs.set(input, (await runChunks(runner, chunks, (range) => ({ op: 'subHistHigh', ...range, array: input.data, base }))) as Uint32Array[])
    } else await runChunks(runner, chunks, (range) => ({ op: 'sub', ...range, array: input.data, base }))
  }
  const rescale = asBoolean(job.params.rescale)
  const sparsification = METHOD_SPECS[job.method].sparsification
  // Without rescale no norm is needed: on the CPU the prune happens inside the
  // combine. The GPU's combine has no masks (their positions run in index
  // order, a serial count), so there the prune zeroes the task vectors in
  // memory (sparsify) and the sign election and disjoint merge run on the GPU.
  if (!rescale && runner.device === 'cpu' && (sparsification === 'magnitude' || sparsification === 'magnitude_outliers')) {
    const keepAll = chunks.map((): RankMask => ({ lo: null, hi: null }))
    const masks: RankMask[][] = []
    for (const input of job.inputs) {
      if (!prunes(job, input)) masks.push(keepAll)
      else {
        const { lo, hi } = keptRanks(job, input)
        masks.push(await rankMasks(runner, input.data, lo, hi, highs.get(input)))
      }
    }
    await combine(false, (index) => masks.map((perChunk) => perChunk[index]!))
    return base
  }
  for (const [index, input] of job.inputs.entries()) await sparsify(runner, job, input, index, rescale, highs.get(input))
  await combine(false)
  return base
}

// Chunks and vector count for a layout over a tensor of n elements.
function layoutChunks(layout: Layout, n: number): { chunks: Range[]; vectors: number } {
  if (layout.kind === 'flat') return { chunks: elementChunks(n), vectors: 1 }
  const rows = layout.cols === 0 ? 0 : n / layout.cols
  return { chunks: rowChunks(rows, layout.cols), vectors: layout.kind === 'rows' ? rows : layout.cols }
}

async function gram(runner: KernelRunner, arrays: Float32Array[], base: Float32Array | null, layout: Layout): Promise<Float64Array> {
  const n = arrays[0]!.length
  const pairs = (arrays.length * (arrays.length + 1)) / 2
  const { chunks, vectors } = layoutChunks(layout, n)
  const results = (await runChunks(runner, chunks, (range) => ({ op: 'gram', ...range, arrays, base, layout }))) as Float64Array[]
  if (layout.kind === 'rows') {
    const out = new Float64Array(vectors * pairs)
    results.forEach((partial, i) => out.set(partial, chunks[i]!.start * pairs))
    return out
  }
  const out = new Float64Array(vectors * pairs)
  for (const partial of results) for (let i = 0; i < out.length; i++) out[i]! += partial[i]!
  return out
}

// The result overwrites arrays[0]: every kernel reads an element's operands before writing it.
async function affine(runner: KernelRunner, arrays: Float32Array[], coefficients: Float64Array, layout: Layout): Promise<Float32Array> {
  const n = arrays[0]!.length
  const out = arrays[0]!
  const { chunks } = layoutChunks(layout, n)
  await runChunks(runner, chunks, (range) => ({ op: 'affine', ...range, arrays, coefficients, layout, out }))
  return out
}

async function slerp(runner: KernelRunner, job: TensorMerge): Promise<Float32Array> {
  const a = job.base!
  const b = job.inputs[0]!.data
  const t = asNumber(job.params.t, 't', job.name)
  const [aa, ab, bb] = await gram(runner, [a, b], null, { kind: 'flat' })
  const eps = 1e-8
  const na = Math.sqrt(aa!)
  const nb = Math.sqrt(bb!)
  const dot = ab! / ((na > eps ? na : 1) * (nb > eps ? nb : 1))
  // Nearly colinear: mergekit falls back to linear interpolation.
  if (Math.abs(dot) > 0.9995) return affine(runner, [a, b], Float64Array.of(1 - t, t), { kind: 'flat' })
  const theta = Math.acos(dot)
  const sinTheta = Math.sin(theta)
  return affine(runner, [a, b], Float64Array.of(Math.sin(theta - theta * t) / sinTheta, Math.sin(theta * t) / sinTheta), { kind: 'flat' })
}

async function nuslerp(runner: KernelRunner, job: TensorMerge): Promise<Float32Array> {
  const [first, second] = job.inputs as [MergeInput, MergeInput]
  const w0 = asNumber(first.params.weight, 'weight', `${job.name} of ${first.model}`)
  const w1 = asNumber(second.params.weight, 'weight', `${job.name} of ${second.model}`)
  const t = Math.abs(w0 + w1) < 1e-6 ? 0.5 : w1 / (w0 + w1)
  const base = job.base
  const n = first.data.length
  if (base) {
    for (const input of [first, second]) await runChunks(runner, elementChunks(n), (range) => ({ op: 'sub', ...range, array: input.data, base }))
  }
  const flatten = job.params.nuslerp_flatten === undefined ? true : asBoolean(job.params.nuslerp_flatten)
  const layout: Layout =
    flatten || job.shape.length < 2
      ? { kind: 'flat' }
      : asBoolean(job.params.nuslerp_row_wise)
        ? { kind: 'columns', cols: n / job.shape[0]! }
        : { kind: 'rows', cols: job.shape.at(-1)! }
  const grams = await gram(runner, [first.data, second.data], null, layout)
  const vectors = grams.length / 3
  const k = base ? 3 : 2
  const coefficients = new Float64Array(vectors * k)
  for (let v = 0; v < vectors; v++) {
    const n0 = Math.max(Math.sqrt(grams[v * 3]!), 1e-7)
    const n1 = Math.max(Math.sqrt(grams[v * 3 + 2]!), 1e-7)
    const theta = Math.acos(Math.min(1, Math.max(-1, grams[v * 3 + 1]! / (n0 * n1))))
    const sinTheta = Math.sin(theta)
    const colinear = Math.abs(sinTheta) < 1e-8
    coefficients[v * k] = colinear ? 1 - t : Math.sin((1 - t) * theta) / sinTheta
    coefficients[v * k + 1] = colinear ? t : Math.sin(t * theta) / sinTheta
    if (base) coefficients[v * k + 2] = 1
  }
  return affine(runner, base ? [first.data, second.data, base] : [first.data, second.data], coefficients, layout)
}

async function modelStock(runner: KernelRunner, job: TensorMerge): Promise<Float32Array> {
  const base = job.base!
  const models = job.inputs.map((input) => input.data)
  const count = models.length
  const layout: Layout = asBoolean(job.params.filter_wise) && job.shape.length >= 2 ? { kind: 'rows', cols: job.shape.at(-1)! } : { kind: 'flat' }
  const grams = await gram(runner, models, base, layout)
  const pairs = (count * (count + 1)) / 2
  const vectors = grams.length / pairs
  const coefficients = new Float64Array(vectors * (count + 1))
  const pairIndex = (i: number, j: number) => i * count - (i * (i - 1)) / 2 + (j - i)
  for (let v = 0; v < vectors; v++) {
    const at = v * pairs
    let cosSum = 0
    for (let i = 0; i < count; i++) {
      for (let j = i + 1; j < count; j++) {
        const normProduct = Math.sqrt(grams[at + pairIndex(i, i)]!) * Math.sqrt(grams[at + pairIndex(j, j)]!)
        cosSum += Math.min(1, Math.max(-1, grams[at + pairIndex(i, j)]! / Math.max(normProduct, 1e-6)))
      }
    }
    const cos = cosSum / ((count * (count - 1)) / 2)
    const t = (count * cos) / (1 + (count - 1) * cos)
    coefficients[v * (count + 1)] = 1 - t
    for (let m = 0; m < count; m++) coefficients[v * (count + 1) + 1 + m] = t / count
  }
  return affine(runner, [base, ...models], coefficients, layout)
}

async function linear(runner: KernelRunner, job: TensorMerge): Promise<Float32Array> {
  const weights = job.inputs.map((input) => asNumber(input.params.weight, 'weight', `${job.name} of ${input.model}`))
  const total = weights.reduce((a, b) => a + b, 0)
  const normalize = job.params.normalize === undefined ? true : asBoolean(job.params.normalize)
  if (normalize && total === 0) throw new MergeError(`${job.name}: linear weights sum to 0 and normalize is on`)
  const divisor = normalize ? total : 1
  return affine(runner, job.inputs.map((input) => input.data), Float64Array.from(weights, (w) => w / divisor), { kind: 'flat' })
}

async function passthrough(runner: KernelRunner, job: TensorMerge): Promise<Float32Array> {
  const input = job.inputs[0]!
  const scale = input.params.scale === undefined ? 1 : asNumber(input.params.scale, 'scale', job.name)
  if (scale === 1) return input.data
  return affine(runner, [input.data], Float64Array.of(scale), { kind: 'flat' })
}

// NaN and infinity per array, so a merge can report or refuse them.
export async function countNonFinite(runner: KernelRunner, arrays: Float32Array[]): Promise<number[]> {
  if (arrays.length === 0) return []
  return sumPairs(await runChunks(runner, elementChunks(arrays[0]!.length), (range) => ({ op: 'nonFinite', ...range, arrays })), arrays.length)
}

export async function mergeTensor(runner: KernelRunner, job: TensorMerge): Promise<Float32Array> {
  if (job.inputs.some((input) => input.data.length !== numel(job.shape)) || (job.base && job.base.length !== numel(job.shape))) {
    throw new MergeError(`${job.name}: input sizes differ from the output shape [${job.shape.join(', ')}]`)
  }
  switch (job.method) {
    case 'linear':
      return linear(runner, job)
    case 'slerp':
      return slerp(runner, job)
    case 'nuslerp':
      return nuslerp(runner, job)
    case 'model_stock':
      return modelStock(runner, job)
    case 'passthrough':
      return passthrough(runner, job)
    default:
      return taskArithmetic(runner, job)
  }
}
