// Run by webgpu-runner.test.ts in a child process whose environment points
// Dawn at SwiftShader's Vulkan. Checks the WebGPU kernel runner against the
// CPU kernels on random data (NaN, ±Inf, -0, subnormals, ties) and merges
// every fixture config on it; prints one JSON report for the test to judge.
import { readdir, readFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { parseMergeConfig } from '../../../src/shared/merge-config.ts'
import { createKernelRunner, sharedFloat32 } from '../../../src/gpu-runner/merge/cpu/kernel-runner.ts'
import { runKernel, uniformAt, type KernelCall, type KernelResult } from '../../../src/gpu-runner/merge/cpu/kernels.ts'
import { planMerge } from '../../../src/gpu-runner/merge/merge-plan.ts'
import { openConfigModels, relativeTo } from '../../../src/gpu-runner/merge/open-models.ts'
import { runMerge } from '../../../src/gpu-runner/merge/run-merge.ts'
import { openGpuDevice } from '../../../src/gpu-runner/merge/webgpu/gpu-device.ts'
import { createWebGpuKernelRunner } from '../../../src/gpu-runner/merge/webgpu/webgpu-kernel-runner.ts'
import { openSafetensorsFile } from '../../../src/gpu-runner/tensors/safetensors-file.ts'
import { openSafetensorsModel } from '../../../src/gpu-runner/tensors/safetensors-model.ts'

const FIXTURES = join(import.meta.dirname, '../../fixtures/merge')
// As reference.test.ts: the GPU must meet the same bar as the CPU.
const TOLERANCE: Record<string, number> = { F32: 2e-6, F16: 1e-3, BF16: 8e-3 }

// Two threads, as `moat merge` runs here: worker threads beside Dawn in one process.
const cpu = createKernelRunner({ threads: 2 })
const device = await openGpuDevice()
const gpu = await createWebGpuKernelRunner({ cpu, gpu: device })

// ---- ops against the CPU kernels

const SPECIAL = [0, -0, NaN, Infinity, -Infinity, 1e-40, -1e-40, 0.25, -0.25, 0.5, -0.5, 1, -1]
// Few distinct values, so equal magnitudes (rank ties) and exactly cancelling sums are common.
const TIES = [0, -0, 0.25, -0.25, 0.5, -0.5, 1, -1, 0.125]

function randomArray(n: number, seed: number, mix: 'random' | 'special' | 'ties'): Float32Array {
  const out = sharedFloat32(n)
  let state = seed >>> 0
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    const u = state / 2 ** 32
    if (mix === 'ties') out[i] = TIES[state % TIES.length]!
    else if (mix === 'special' && state % 7 === 0) out[i] = SPECIAL[(state >>> 8) % SPECIAL.length]!
    else out[i] = (u - 0.5) * 0.2
  }
  return out
}

function copy(array: Float32Array): Float32Array {
  const out = sharedFloat32(array.length)
  out.set(array)
  return out
}

const N = 20_000
// Every op call covers this chunk of N-element arrays: past 0 and short of the end.
const RANGE = { start: 1000, end: N - 777 }

const failures: string[] = []
let opsChecked = 0

// got against want: the same NaNs, the same infinities, finite values within
// `relative` of the element's scale (the sum of its terms' magnitudes, for
// sums that cancel), plus a floor for subnormals a GPU may flush to zero.
function compare(name: string, got: Float32Array, want: Float32Array, relative: number, scale: (i: number) => number = (i) => Math.abs(want[i]!)) {
  opsChecked++
  let bad = 0
  let first = ''
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!
    const w = want[i]!
    // Outside the chunk nothing may change.
    const ok =
      i < RANGE.start || i >= RANGE.end
        ? Object.is(g, w)
        : Number.isNaN(w)
          ? Number.isNaN(g)
          : !Number.isFinite(w)
            ? g === w
            : Number.isFinite(g) && Math.abs(g - w) <= relative * scale(i) + 1e-37
    if (!ok) {
      if (bad === 0) first = `[${i}] got ${g}, want ${w}`
      bad++
    }
  }
  if (bad > 0) failures.push(`${name}: ${bad} of ${want.length} differ, first ${first}`)
}

// The same bits, but that any NaN equals any other (a NaN's payload is the hardware's).
function sameBits(name: string, got: Float32Array, want: Float32Array) {
  opsChecked++
  const a = new Uint32Array(got.buffer, got.byteOffset, got.length)
  const b = new Uint32Array(want.buffer, want.byteOffset, want.length)
  let bad = 0
  let first = ''
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) {
      if (bad === 0) first = `[${i}] got ${got[i]}, want ${want[i]}`
      bad++
    }
  }
  if (bad > 0) failures.push(`${name}: ${bad} of ${a.length} bits differ, first ${first}`)
}

function sameResult(name: string, got: KernelResult, want: KernelResult) {
  if (JSON.stringify(got) !== JSON.stringify(want)) failures.push(`${name}: result ${JSON.stringify(got)}, want ${JSON.stringify(want)}`)
}

// Runs `make(arrays)` on the GPU runner over copies and on the CPU kernel
// over others; returns both sides' arrays and results. The chunk starts past
// 0 and ends before the end, so untouched elements are checked too.
async function both(arrays: Float32Array[], make: (arrays: Float32Array[], start: number, end: number) => KernelCall) {
  const n = arrays[0]!.length
  const { start, end } = RANGE
  if (end > n) throw new Error('arrays shorter than RANGE')
  const mine = arrays.map(copy)
  const theirs = arrays.map(copy)
  const before = gpu.counts.gpu
  const [gotResult] = await gpu.run([make(mine, start, end)])
  if (gpu.counts.gpu === before) failures.push(`${make(theirs, start, end).op}: ran on the CPU, not the GPU`)
  const wantResult = runKernel(make(theirs, start, end))
  return { mine, theirs, gotResult: gotResult!, wantResult }
}

for (const mix of ['random', 'special', 'ties'] as const) {
  const [a, b, c, d] = [1, 2, 3, 4].map((seed) => randomArray(N, seed * 97 + mix.length, mix)) as [Float32Array, Float32Array, Float32Array, Float32Array]

  // sub is one float32 subtraction on both sides: exact, but that a GPU may flush subnormals.
  const sub = await both([a, b], ([x, base], start, end) => ({ op: 'sub', start, end, array: x!, base: base! }))
  compare(`sub ${mix}`, sub.mine[0]!, sub.theirs[0]!, 0)

  const scale = await both([a], ([x], start, end) => ({ op: 'scale', start, end, array: x!, factor: 1.2345678912345 }))
  compare(`scale ${mix}`, scale.mine[0]!, scale.theirs[0]!, 1.2e-7)

  // DARE: the masked values (x × 0 or 1, exact on both) and the L1 sums match to the bit.
  for (const [key, p] of [
    [0x12345678, 0.5],
    [0xdeadbeef, 0.1],
    [7, 0.9],
    [99, 1 / 3],
    [5, 0],
    [6, 1],
  ] as const) {
    const drop = await both([a], ([x], start, end) => ({ op: 'bernoulliMask', start, end, array: x!, key, p }))
    sameBits(`bernoulliMask ${mix} key ${key} p ${p}`, drop.mine[0]!, drop.theirs[0]!)
    sameResult(`bernoulliMask ${mix} key ${key} p ${p} sums`, drop.gotResult, drop.wantResult)
  }

  for (let k = 1; k <= 5; k++) {
    const coefficients = Float64Array.from([0.3, -0.7, 1 / 3, 2.5, -0.125].slice(0, k))
    const inputs = [a, b, c, d, a].slice(0, k)
    const affine = await both(inputs, (xs, start, end) => ({ op: 'affine', start, end, arrays: xs, coefficients, layout: { kind: 'flat' }, out: xs[0]! }))
    compare(`affine ${mix} k ${k}`, affine.mine[0]!, affine.theirs[0]!, 4e-7, (i) => inputs.reduce((sum, x, m) => sum + Math.abs(coefficients[m]! * x[i]!), 0))
  }

  const combines: { label: string; weights: number[]; consensus: boolean; normalize: boolean; lambda: number; fromInputs: boolean }[] = [
    { label: 'fromInputs', weights: [0.5, -0.3, 1], consensus: false, normalize: false, lambda: 1, fromInputs: true },
    { label: 'fromInputs normalize λ', weights: [0.5, 0.3], consensus: false, normalize: true, lambda: 1.5, fromInputs: true },
    { label: 'stored', weights: [0.5, 0.25, 0.7], consensus: false, normalize: false, lambda: 0.5, fromInputs: false },
    { label: 'stored normalize', weights: [0.2], consensus: false, normalize: true, lambda: 1, fromInputs: false },
    // Positive weights take the CPU's branch-free election, others its comparisons.
    { label: 'consensus', weights: [0.5, 0.5, 1], consensus: true, normalize: true, lambda: 1, fromInputs: false },
    { label: 'consensus no normalize λ', weights: [0.3, 0.7], consensus: true, normalize: false, lambda: 0.8, fromInputs: false },
    { label: 'consensus signed weights', weights: [0.5, -0.5, 0, 1], consensus: true, normalize: true, lambda: 1.2, fromInputs: false },
  ]
  for (const { label, weights, consensus, normalize, lambda, fromInputs } of combines) {
    const deltas = [b, c, d, a].slice(0, weights.length)
    const run = await both([a, ...deltas], ([base, ...ds], start, end) => ({
      op: 'taskCombine',
      start,
      end,
      deltas: ds,
      weights,
      base: base!,
      out: base!,
      consensus,
      normalize,
      lambda,
      fromInputs,
    }))
    const divisor = normalize ? Math.abs(weights.reduce((x, y) => x + Math.abs(y), 0)) : 1
    const termScale = (i: number) =>
      Math.abs(a[i]!) + (deltas.reduce((sum, delta, m) => sum + Math.abs(weights[m]! * (fromInputs ? delta[i]! - a[i]! : delta[i]!)), 0) / Math.min(1, divisor)) * lambda
    compare(`taskCombine ${label} ${mix}`, run.mine[0]!, run.theirs[0]!, 5e-7, termScale)
  }
}

// The mask identity itself: on ones, the output is the mask.
{
  const ones = sharedFloat32(300_000).fill(1)
  const key = 0x9e3779b9
  await gpu.run([{ op: 'bernoulliMask', start: 0, end: ones.length, array: ones, key, p: 0.37 }])
  let bad = 0
  for (let i = 0; i < ones.length; i++) if (ones[i] !== +(uniformAt(key, i) < 0.37)) bad++
  opsChecked++
  if (bad > 0) failures.push(`bernoulliMask mask: ${bad} of ${ones.length} decisions differ from uniformAt`)
}

// Fallbacks: a combine with masks, and one binding more arrays than allowed,
// run on the CPU (to the bit); a combination the CPU refuses is refused.
{
  const narrow = await createWebGpuKernelRunner({ cpu, gpu: device, maxStorageBuffers: 4 })
  const [base, d0, d1, d2] = [5, 6, 7, 8].map((seed) => randomArray(N, seed, 'special')) as [Float32Array, Float32Array, Float32Array, Float32Array]
  const combine = (out: Float32Array, masks?: boolean): KernelCall => ({
    op: 'taskCombine',
    start: 0,
    end: N,
    deltas: [d0, d1, d2],
    weights: [0.4, 0.4, 0.2],
    base,
    out,
    consensus: true,
    normalize: true,
    lambda: 1,
    ...(masks ? { masks: [0, 1, 2].map(() => ({ lo: { bits: 0x3e000000, offset: 0, position: 0 }, hi: null })) } : {}),
  })
  for (const [label, runner, masks] of [
    ['five arrays on a four-array device', narrow, false],
    ['masks', gpu, true],
  ] as const) {
    const got = sharedFloat32(N)
    const want = sharedFloat32(N)
    const before = runner.counts.cpu
    await runner.run([combine(got, masks)])
    runKernel(combine(want, masks))
    opsChecked++
    if (runner.counts.cpu !== before + 1) failures.push(`fallback ${label}: did not run on the CPU`)
    sameBits(`fallback ${label}`, got, want)
  }
  const refused = await gpu.run([{ ...(combine(sharedFloat32(N)) as Extract<KernelCall, { op: 'taskCombine' }>), fromInputs: true }]).then(
    () => 'ran',
    (error: Error) => error.message,
  )
  opsChecked++
  if (!/need stored task vectors/.test(refused)) failures.push(`fromInputs with consensus: ${refused}`)
  await narrow.close()
}

// ---- every fixture config merged on the GPU runner, against the numpy reference

type FixtureReport = { config: string; gpuCalls: number; nonFinite: number; worst: { name: string; error: number }[] }
const fixtures: FixtureReport[] = []
const out = await mkdtemp(join(tmpdir(), 'moat-merge-webgpu-'))
for (const configName of (await readdir(join(FIXTURES, 'configs'))).filter((name) => name.endsWith('.yml')).sort()) {
  const path = join(FIXTURES, 'configs', configName)
  const config = parseMergeConfig(await readFile(path, 'utf8'))
  const opened = await openConfigModels(config, relativeTo(dirname(path)))
  const dir = join(out, configName)
  const before = gpu.counts.gpu
  let outcome
  try {
    outcome = await runMerge({ plan: planMerge(config, opened.models), outDir: dir, maxShardBytes: 16_000, runner: gpu })
  } finally {
    await opened.close()
  }
  const report: FixtureReport = { config: configName.replace('.yml', ''), gpuCalls: gpu.counts.gpu - before, nonFinite: outcome.nonFinite.length, worst: [] }
  const model = await openSafetensorsModel(dir)
  const reference = await openSafetensorsFile(join(FIXTURES, 'reference', configName.replace('.yml', '.safetensors')))
  const names = [...model.tensors.keys()].sort()
  if (JSON.stringify(names) !== JSON.stringify(reference.header.tensors.map((t) => t.name).sort())) report.worst.push({ name: 'tensor names differ', error: Infinity })
  for (const info of reference.header.tensors) {
    const tensor = model.tensors.get(info.name)
    if (!tensor || tensor.dtype !== info.dtype || JSON.stringify(tensor.shape) !== JSON.stringify(info.shape)) {
      report.worst.push({ name: `${info.name}: dtype or shape differs`, error: Infinity })
      continue
    }
    const mine = new Float32Array(info.shape.reduce((a, b) => a * b, 1))
    const expected = new Float32Array(mine.length)
    await tensor.file.readFloat32(tensor, mine)
    await reference.readFloat32(info, expected)
    let error = 0
    for (let i = 0; i < expected.length; i++) error = Math.max(error, Math.abs(mine[i]! - expected[i]!) / Math.max(1, Math.abs(expected[i]!)))
    // NaN errors fail too: !(NaN <= tolerance).
    if (!(error <= TOLERANCE[info.dtype]!)) report.worst.push({ name: info.name, error })
  }
  await reference.close()
  await model.close()
  fixtures.push(report)
}
await rm(out, { recursive: true, force: true })

await gpu.close()
await cpu.close()
device.destroy()
process.stdout.write(`${JSON.stringify({ adapter: gpu.adapter, opsChecked, failures, fixtures })}\n`)
process.exit(0)
