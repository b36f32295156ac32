import { execFileSync } from 'node:child_process'
import { METHOD_SPECS, MERGE_METHODS, type MergeMethodName } from '../src/shared/merge-methods.ts'
import { createArrayPool } from '../src/gpu-runner/merge/array-pool.ts'
import { createKernelRunner, defaultThreads, sharedFloat32, type KernelRunner } from '../src/gpu-runner/merge/cpu/kernel-runner.ts'
import { mergeTensor, type MergeInput } from '../src/gpu-runner/merge/merge-tensor.ts'
import { decodeOnRunner, encodeOnRunner } from '../src/gpu-runner/merge/threaded-codec.ts'
import { encodedSize, encodeFromFloat32, type WritableDtype } from '../src/gpu-runner/tensors/dtype-codec.ts'
import { seededUniform } from '../scripts/merge-fixtures/synthetic-model.ts'

// One method on three 4096 × 4096 tensors (a base and two models; slerp reads
// two, passthrough one), stored as `dtype`: decode to float32, merge, encode
// back, timed, each step on the kernel threads as `moat merge` runs it (the
// stored bytes sit in shared memory, as a read puts them). Each method runs in
// a child process of its own so its peak RSS is its own. Run without
// arguments for the whole table (BENCH_METHODS=linear,ties for some rows).
//
// BENCH_DEVICE=webgpu runs the same table on the WebGPU kernel runner (the
// element-wise ops on the GPU, the rest on the kernel threads; set
// VK_ICD_FILENAMES for SwiftShader where there is no GPU, whose figures time
// the correctness path on a CPU emulation, not a GPU's speed).

const SIDE = Number(process.env.BENCH_SIDE ?? 4096)
const DEVICE = process.env.BENCH_DEVICE ?? 'cpu'
const N = SIDE * SIDE
const STEADY_ROUNDS = 3

const PARAMS: Record<MergeMethodName, { global: Record<string, number | boolean>; model: Record<string, number> }> = {
  linear: { global: {}, model: { weight: 0.5 } },
  slerp: { global: { t: 0.4 }, model: {} },
  nuslerp: { global: {}, model: { weight: 0.5 } },
  task_arithmetic: { global: {}, model: { weight: 0.5 } },
  ties: { global: {}, model: { weight: 0.5, density: 0.5 } },
  dare_ties: { global: {}, model: { weight: 0.5, density: 0.5 } },
  dare_linear: { global: {}, model: { weight: 0.5, density: 0.5 } },
  breadcrumbs: { global: {}, model: { weight: 0.5, density: 0.9, gamma: 0.01 } },
  breadcrumbs_ties: { global: {}, model: { weight: 0.5, density: 0.9, gamma: 0.01 } },
  della: { global: {}, model: { weight: 0.5, density: 0.5, epsilon: 0.1 } },
  della_linear: { global: {}, model: { weight: 0.5, density: 0.5, epsilon: 0.1 } },
  model_stock: { global: {}, model: {} },
  passthrough: { global: {}, model: {} },
}

function storedTensor(seed: number, dtype: WritableDtype): Uint8Array {
  const random = seededUniform(seed)
  const values = new Float32Array(N)
  for (let i = 0; i < N; i++) values[i] = (random() - 0.5) * 0.1
  const bytes = new Uint8Array(new SharedArrayBuffer(encodedSize(dtype, N)))
  encodeFromFloat32(dtype, values, bytes)
  return bytes
}

async function measure(method: MergeMethodName, dtype: WritableDtype, threads: number) {
  const spec = METHOD_SPECS[method]
  const withBase = spec.needsBase || method === 'nuslerp'
  const modelCount = method === 'passthrough' ? 1 : method === 'slerp' ? 1 : method === 'linear' ? 3 : 2
  const stored = Array.from({ length: modelCount + (withBase ? 1 : 0) }, (_, i) => storedTensor(i + 1, dtype))
  const runner: KernelRunner & { counts?: { gpu: number; cpu: number } } =
    DEVICE === 'webgpu' ? await (await import('../src/gpu-runner/merge/webgpu/webgpu-kernel-runner.ts')).createWebGpuKernelRunner({ threads }) : createKernelRunner({ threads })
  // Threads start once per process, not per tensor: not part of a merge's time.
  await runner.run([{ op: 'scale', start: 0, end: 1, array: sharedFloat32(1), factor: 1 }])
  const pool = createArrayPool()
  const encoded = new Uint8Array(new SharedArrayBuffer(encodedSize(dtype, N)))
  // The first tensor of a merge touches fresh memory (page faults on every
  // array); the tensors after it reuse the pool's arrays, as `moat merge` does
  // from tensor to tensor. The median of three more rounds is the merge's
  // steady rate (one round alone moved by up to 2× on a shared machine).
  const timings: number[] = []
  for (let round = 0; round < 1 + STEADY_ROUNDS; round++) {
    const started = performance.now()
    const decoded = stored.map(() => pool.take(N))
    await Promise.all(stored.map((bytes, i) => decodeOnRunner(runner, dtype, bytes, decoded[i]!)))
    const base = withBase ? decoded[0]! : null
    const inputs: MergeInput[] = decoded.slice(withBase ? 1 : 0).map((data, i) => ({ model: `m${i}`, data, params: PARAMS[method].model }))
    const out = await mergeTensor(runner, { name: 'bench.weight', method, shape: [SIDE, SIDE], base, inputs, params: PARAMS[method].global, seed: 1 })
    await encodeOnRunner(runner, dtype, out, encoded)
    timings.push((performance.now() - started) / 1000)
    pool.release(decoded)
  }
  await runner.close()
  // Of the kernel calls (chunks) in a merge, decode and encode included, the share run on the GPU.
  const onGpu = runner.counts ? runner.counts.gpu / (runner.counts.gpu + runner.counts.cpu) : 0
  const inputBytes = stored.reduce((sum, bytes) => sum + bytes.byteLength, 0)
  const [firstSeconds, ...steady] = timings as [number, ...number[]]
  const seconds = steady.sort((a, b) => a - b)[Math.floor(steady.length / 2)]!
  return { method, dtype, tensors: stored.length, seconds, gbPerSecond: inputBytes / 1e9 / seconds, firstSeconds, peakRssMb: process.resourceUsage().maxRSS / 1024, onGpu }
}

const [method, dtype, threads] = process.argv.slice(2)
if (method) {
  process.stdout.write(`${JSON.stringify(await measure(method as MergeMethodName, dtype as WritableDtype, Number(threads)))}\n`)
} else {
  const threadCount = Number(process.env.BENCH_THREADS ?? defaultThreads())
  const methods = process.env.BENCH_METHODS ? (process.env.BENCH_METHODS.split(',') as MergeMethodName[]) : MERGE_METHODS
  const unknown = methods.filter((name) => !MERGE_METHODS.includes(name))
  if (unknown.length > 0) throw new Error(`BENCH_METHODS: unknown ${unknown.join(', ')}`)
  let device = `${threadCount} threads`
  if (DEVICE === 'webgpu') {
    const { openGpuDevice } = await import('../src/gpu-runner/merge/webgpu/gpu-device.ts')
    const gpu = await openGpuDevice()
    device = `WebGPU on ${gpu.adapter} (the rest on ${threadCount} threads)`
    gpu.destroy()
  } else if (DEVICE !== 'cpu') throw new Error(`BENCH_DEVICE ${DEVICE}: expected cpu or webgpu`)
  console.log(`merge kernels: ${SIDE} x ${SIDE} tensors, ${device}; decode + merge + encode, wall time (steady: arrays reused, median of ${STEADY_ROUNDS} rounds; first: fresh memory)`)
  const gpuColumn = DEVICE === 'webgpu'
  console.log(`| method | dtype | inputs | wall | GB/s of input | first tensor | peak RSS |${gpuColumn ? ' calls on GPU |' : ''}`)
  console.log(`|---|---|---|---|---|---|---|${gpuColumn ? '---|' : ''}`)
  for (const name of methods) {
    for (const storedDtype of ['F32', 'BF16'] as const) {
      const line = execFileSync(process.execPath, [import.meta.filename, name, storedDtype, String(threadCount)], { encoding: 'utf8' })
      const result = JSON.parse(line) as Awaited<ReturnType<typeof measure>>
      const gpuCell = gpuColumn ? ` ${(result.onGpu * 100).toFixed(0)}% |` : ''
      console.log(`| ${name} | ${storedDtype} | ${result.tensors} | ${result.seconds.toFixed(2)} s | ${result.gbPerSecond.toFixed(2)} | ${result.firstSeconds.toFixed(2)} s | ${result.peakRssMb.toFixed(0)} MB |${gpuCell}`)
    }
  }
}
