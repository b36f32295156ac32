import { createKernelRunner, type KernelRunner } from '../cpu/kernel-runner.ts'
import { plainDivisor, type KernelCall, type KernelResult } from '../cpu/kernels.ts'
import { openGpuDevice, type GpuDevice } from './gpu-device.ts'
import {
  affineShader,
  bernoulliShader,
  bernoulliThreshold,
  scaleShader,
  subShader,
  taskCombineShader,
  weightSigns,
  WORKGROUP_SIZE,
  type Shader,
} from './wgsl-shaders.ts'

// A KernelRunner whose element-wise ops run as WGSL compute shaders: sub,
// scale, flat affine (linear, slerp, passthrough's scale), the task-arithmetic
// combine without masks (with and without the sign election) and DARE's
// Bernoulli drop. Every other op (decode/encode, histograms, rank selection,
// DELLA, gram, the combine with masks) runs on a CPU runner it owns, as do
// calls that bind more arrays than the device allows per shader stage or
// chunks larger than one binding may be.
//
// Each call's chunk is uploaded, computed and read back into the caller's
// arrays, so the runner is a drop-in for the CPU one and a merge can mix them
// freely. The next step is keeping a tensor resident on the GPU across ops
// (a TIES merge uploads each task vector once per op today).
//
// Results are float32 arithmetic: WGSL has no float64, so where the CPU
// kernels keep float64 intermediates (weighted sums, coefficients, the
// rescale factor) a GPU result may differ from the CPU's by rounding (in
// practice a few units in the last place; a float32 intermediate can also
// overflow where a float64 one would not, near ±3.4e38). Masks are integer
// arithmetic and match the CPU's bit for bit.

export type WebGpuKernelRunnerOptions = {
  // Threads of the CPU runner that takes the other ops.
  threads?: number
  // A CPU runner to use instead of creating one (not closed by close()).
  cpu?: KernelRunner
  // A device to use instead of opening one (not destroyed by close()).
  gpu?: GpuDevice
  // Storage arrays a shader may bind, at most the device's limit (for tests of the fallback).
  maxStorageBuffers?: number
}

export type WebGpuKernelRunner = KernelRunner & {
  device: 'webgpu'
  adapter: string
  // Calls run so far on each side, for tests and the bench.
  counts: { gpu: number; cpu: number }
}

// What one call does on the GPU: the shader, the uniform, the chunk's arrays
// (those read are uploaded) and the one array read back.
type GpuPlan = {
  shader: Shader
  head: [number, number, number, number]
  floats: number[]
  start: number
  count: number
  bindings: { array: Float32Array; upload: boolean }[]
  output: number
  // Turns the read-back chunk into the call's result.
  finish?: (before: number) => KernelResult
  // Computed from the inputs before they are overwritten.
  prepare?: () => number
}

// The L1 norm of a chunk, in float64 and index order as kernels.ts sums it,
// so a DARE rescale factor is the CPU's to the bit.
function magnitudeSum(array: Float32Array, start: number, end: number): number {
  let sum = 0
  for (let i = start; i < end; i++) sum += Math.abs(array[i]!)
  return sum
}

// Shaders by key, generated once per process.
const shaders = new Map<string, Shader>()
function cached(key: string, make: () => Shader): Shader {
  let shader = shaders.get(key)
  if (!shader) {
    shader = make()
    shaders.set(key, shader)
  }
  return shader
}

// The GPU plan for a call, or null when it belongs on the CPU.
function planFor(call: KernelCall): GpuPlan | null {
  const { start, end } = call
  const count = end - start
  switch (call.op) {
    case 'sub':
      return {
        shader: cached('sub', subShader),
        head: [count, start, 0, 0],
        floats: [],
        start,
        count,
        bindings: [
          { array: call.array, upload: true },
          { array: call.base, upload: true },
        ],
        output: 0,
      }
    case 'scale':
      return { shader: cached('scale', scaleShader), head: [count, start, 0, 0], floats: [call.factor], start, count, bindings: [{ array: call.array, upload: true }], output: 0 }
    case 'bernoulliMask': {
      const array = call.array
      return {
        shader: cached('bernoulliMask', bernoulliShader),
        head: [count, start, call.key >>> 0, bernoulliThreshold(call.p)],
        floats: [],
        start,
        count,
        bindings: [{ array, upload: true }],
        output: 0,
        prepare: () => magnitudeSum(array, start, end),
        finish: (before) => [before, magnitudeSum(array, start, end)],
      }
    }
    case 'affine': {
      if (call.layout.kind !== 'flat') return null
      const k = call.arrays.length
      return {
        shader: cached(`affine:${k}`, () => affineShader(k)),
        head: [count, start, 0, 0],
        floats: Array.from(call.coefficients.subarray(0, k)),
        start,
        count,
        bindings: [...call.arrays.map((array) => ({ array, upload: true })), { array: call.out, upload: false }],
        output: k,
      }
    }
    case 'taskCombine': {
      // Pruning inside the combine counts positions in index order: the CPU's.
      if (call.masks) return null
      const fromInputs = call.fromInputs === true
      // The CPU refuses this combination with its message.
      if (fromInputs && call.consensus) return null
      const k = call.deltas.length
      const { consensus, normalize, lambda, weights } = call
      const signs = weightSigns(weights)
      const shape = { k, consensus, normalize, fromInputs, signs }
      const divisor = plainDivisor(weights, normalize)
      return {
        shader: cached(`taskCombine:${k}:${consensus}:${normalize}:${fromInputs}:${signs.join('')}`, () => taskCombineShader(shape)),
        head: [count, start, 0, 0],
        floats: consensus ? [...weights, lambda] : [...weights, divisor, lambda],
        start,
        count,
        bindings: [...call.deltas.map((array) => ({ array, upload: true })), { array: call.base, upload: true }, { array: call.out, upload: false }],
        output: k + 1,
      }
    }
    default:
      return null
  }
}

export async function createWebGpuKernelRunner(options: WebGpuKernelRunnerOptions = {}): Promise<WebGpuKernelRunner> {
  const gpu = options.gpu ?? (await openGpuDevice())
  const cpu = options.cpu ?? createKernelRunner({ threads: options.threads })
  const { device } = gpu
  const maxStorage = Math.min(options.maxStorageBuffers ?? Infinity, device.limits.maxStorageBuffersPerShaderStage)
  const maxBindingBytes = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize)
  const counts = { gpu: 0, cpu: 0 }
  let lost: Error | null = null
  void device.lost.then((info) => {
    if (info.reason !== 'destroyed') lost = new Error(`the WebGPU device was lost: ${info.message}`)
  })

  const pipelines = new Map<string, GPUComputePipeline>()
  const pipelineFor = (shader: Shader) => {
    let pipeline = pipelines.get(shader.key)
    if (!pipeline) {
      pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: shader.code }), entryPoint: 'main' } })
      pipelines.set(shader.key, pipeline)
    }
    return pipeline
  }

  // Buffers reused from call to call, grown as chunks need: one per binding
  // slot, the uniform, and the read-back buffer.
  const storage: GPUBuffer[] = []
  const storageFor = (slot: number, bytes: number) => {
    const existing = storage[slot]
    if (existing && existing.size >= bytes) return existing
    existing?.destroy()
    const buffer = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC })
    storage[slot] = buffer
    return buffer
  }
  let uniform: GPUBuffer | null = null
  let readback: GPUBuffer | null = null

  const runOnGpu = async (plan: GpuPlan): Promise<KernelResult> => {
    const before = plan.prepare?.() ?? 0
    if (plan.count === 0) return plan.finish ? plan.finish(before) : null
    const bytes = plan.count * 4
    const pipeline = pipelineFor(plan.shader)
    const uniformBytes = 16 + 16 * Math.max(1, Math.ceil(plan.shader.floats / 4))
    if (!uniform || uniform.size < uniformBytes) {
      uniform?.destroy()
      uniform = device.createBuffer({ size: Math.max(256, uniformBytes), usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST })
    }
    const params = new ArrayBuffer(uniformBytes)
    new Uint32Array(params, 0, 4).set(plan.head)
    new Float32Array(params, 16).set(plan.floats)
    device.queue.writeBuffer(uniform, 0, params)
    const buffers = plan.bindings.map(({ array, upload }, slot) => {
      const buffer = storageFor(slot, bytes)
      // From the caller's (shared) memory straight into the queue's staging.
      if (upload) device.queue.writeBuffer(buffer, 0, array, plan.start, plan.count)
      return buffer
    })
    if (!readback || readback.size < bytes) {
      readback?.destroy()
      readback = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST })
    }
    const bindGroup = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: uniform, size: uniformBytes } }, ...buffers.map((buffer, j) => ({ binding: j + 1, resource: { buffer, size: bytes } }))],
    })
    const groups = Math.ceil(plan.count / WORKGROUP_SIZE)
    const x = Math.min(groups, device.limits.maxComputeWorkgroupsPerDimension)
    device.pushErrorScope('validation')
    const encoder = device.createCommandEncoder()
    const pass = encoder.beginComputePass()
    pass.setPipeline(pipeline)
    pass.setBindGroup(0, bindGroup)
    pass.dispatchWorkgroups(x, Math.ceil(groups / x))
    pass.end()
    encoder.copyBufferToBuffer(buffers[plan.output]!, 0, readback, 0, bytes)
    device.queue.submit([encoder.finish()])
    const error = await device.popErrorScope()
    if (error) throw new Error(`WebGPU ${plan.shader.key}: ${error.message}`)
    await readback.mapAsync(GPUMapMode.READ, 0, bytes)
    plan.bindings[plan.output]!.array.set(new Float32Array(readback.getMappedRange(0, bytes)), plan.start)
    readback.unmap()
    return plan.finish ? plan.finish(before) : null
  }

  // One GPU call at a time, across concurrent run()s (a merge's reads for the
  // next tensor overlap this one's kernels): the buffers above are shared.
  let gpuQueue: Promise<unknown> = Promise.resolve()
  const onGpu = (plan: GpuPlan): Promise<KernelResult> => {
    const result = gpuQueue.then(() => {
      if (lost) throw lost
      return runOnGpu(plan)
    })
    gpuQueue = result.catch(() => {})
    return result
  }

  const fits = (plan: GpuPlan) => plan.bindings.length <= maxStorage && plan.count * 4 <= maxBindingBytes

  return {
    device: 'webgpu',
    adapter: gpu.adapter,
    threads: cpu.threads,
    counts,
    async run(calls) {
      const results: KernelResult[] = new Array(calls.length).fill(null)
      const onCpu: number[] = []
      const pending: Promise<void>[] = []
      for (const [index, call] of calls.entries()) {
        const plan = planFor(call)
        if (!plan || !fits(plan)) {
          onCpu.push(index)
          continue
        }
        counts.gpu++
        pending.push(onGpu(plan).then((result) => void (results[index] = result)))
      }
      if (onCpu.length > 0) {
        counts.cpu += onCpu.length
        pending.push(
          cpu.run(onCpu.map((index) => calls[index]!)).then((cpuResults) => {
            cpuResults.forEach((result, j) => (results[onCpu[j]!] = result))
          }),
        )
      }
      await Promise.all(pending)
      return results
    },
    async close() {
      await gpuQueue
      for (const buffer of [...storage, uniform, readback]) buffer?.destroy()
      if (!options.gpu) gpu.destroy()
      if (!options.cpu) await cpu.close()
    },
  }
}
