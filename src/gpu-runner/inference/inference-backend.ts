import type { IoMetadata } from '../../shared/inference-wire.ts'
import { withModelAlone } from './model-alone.ts'

// One interface, one implementation per backend (onnxruntime-node on CPU or
// CUDA, onnxruntime-web on wasm); the registry picks one. onnxruntime-node is
// the reference the others are tested against.

export type OutputTensors = Record<string, { dims: number[]; data: Float32Array }>

export type LoadedModel = {
  inputs: IoMetadata[]
  outputs: IoMetadata[]
  run(inputName: string, data: Float32Array, dims: number[]): Promise<OutputTensors>
  release(): Promise<void>
}

export type InferenceBackend = {
  name: string
  load(path: string): Promise<LoadedModel>
}

export const BACKEND_NAMES = ['auto', 'node', 'wasm', 'webgpu'] as const
export type BackendName = (typeof BACKEND_NAMES)[number]

// The runtime's own message when a file is not a loadable model, so the edge
// can answer 422 with it.
export class ModelLoadError extends Error {
  override readonly name = 'ModelLoadError'
}

type Ort = typeof import('onnxruntime-node')

function wrap(ort: Pick<Ort, 'Tensor'>, session: import('onnxruntime-common').InferenceSession): LoadedModel {
  const describe = (metadata: readonly import('onnxruntime-common').InferenceSession.ValueMetadata[]) =>
    metadata.map((item) => ({
      name: item.name,
      type: item.isTensor ? item.type : 'non-tensor',
      shape: item.isTensor ? [...item.shape] : [],
    }))
  return {
    inputs: describe(session.inputMetadata),
    outputs: describe(session.outputMetadata),
    async run(inputName, data, dims) {
      const results = await session.run({ [inputName]: new ort.Tensor('float32', data, dims) })
      const outputs: OutputTensors = {}
      for (const [name, tensor] of Object.entries(results)) {
        outputs[name] = { dims: [...tensor.dims], data: Float32Array.from(tensor.data as Float32Array) }
      }
      return outputs
    },
    release: () => session.release(),
  }
}

// With an NVIDIA GPU (a /dev/nvidia0 device), sessions ask for the CUDA
// provider first; where its libraries are missing, ONNX Runtime refuses the
// session and it is made again on the CPU.
export function onnxruntimeNodeBackend(ort: Ort, options: { cuda?: boolean } = {}): InferenceBackend {
  let cuda = options.cuda ?? false
  return {
    get name() {
      return cuda ? 'onnxruntime-node (cuda)' : 'onnxruntime-node'
    },
    load: (path) => withModelAlone(path, async (alone) => {
      const create = (providers: string[]) =>
        // Errors only: a tenant's file would otherwise fill the log with warnings about itself.
        ort.InferenceSession.create(alone, { executionProviders: providers, logSeverityLevel: 3 }).catch((error: unknown) => {
          throw new ModelLoadError(error instanceof Error ? error.message : String(error))
        })
      if (!cuda) return wrap(ort, await create(['cpu']))
      try {
        return wrap(ort, await create(['cuda', 'cpu']))
      } catch {
        // A file that fails on the CPU too is a bad file (that error is thrown);
        // one that loads there means CUDA itself is missing.
        const session = await create(['cpu'])
        cuda = false
        return wrap(ort, session)
      }
    }),
  }
}

export function onnxruntimeWebBackend(ort: typeof import('onnxruntime-web'), readFile: (path: string) => Promise<Uint8Array>): InferenceBackend {
  return {
    name: 'onnxruntime-web (wasm)',
    async load(path) {
      const bytes = await readFile(path)
      const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] }).catch((error: unknown) => {
        throw new ModelLoadError(error instanceof Error ? error.message : String(error))
      })
      return wrap(ort as unknown as Ort, session)
    },
  }
}

// onnxruntime-web's WebGPU provider, on Dawn (the `webgpu` package) as the
// WebGPU implementation: any GPU with Vulkan (or Metal, D3D12) drivers, or
// SwiftShader's CPU Vulkan for tests. Refuses to start without an adapter.
export async function onnxruntimeWebGpuBackend(readFile: (path: string) => Promise<Uint8Array>): Promise<InferenceBackend> {
  const { create, globals } = await import('webgpu')
  Object.assign(globalThis, globals)
  const gpu = create([])
  const adapter = await gpu.requestAdapter()
  if (!adapter) throw new Error('no WebGPU adapter: this machine has no GPU driver Dawn can use (set VK_ICD_FILENAMES for SwiftShader)')
  Object.defineProperty(globalThis, 'navigator', { value: { ...globalThis.navigator, gpu }, configurable: true })
  const ort = await import('onnxruntime-web/webgpu')
  return {
    name: 'onnxruntime-web (webgpu)',
    async load(path) {
      const bytes = await readFile(path)
      const session = await ort.InferenceSession.create(bytes, { executionProviders: ['webgpu'] }).catch((error: unknown) => {
        throw new ModelLoadError(error instanceof Error ? error.message : String(error))
      })
      return wrap(ort as unknown as Ort, session)
    },
  }
}

// `auto` prefers the native runtime and falls back to wasm where its binary
// cannot load (another platform, a missing shared library). WebGPU is chosen
// by name only.
export async function chooseBackend(name: BackendName): Promise<InferenceBackend> {
  const { readFile } = await import('node:fs/promises')
  const loadWeb = async () => onnxruntimeWebBackend(await import('onnxruntime-web'), (path) => readFile(path))
  if (name === 'wasm') return loadWeb()
  if (name === 'webgpu') return onnxruntimeWebGpuBackend((path) => readFile(path))
  try {
    const { existsSync } = await import('node:fs')
    return onnxruntimeNodeBackend(await import('onnxruntime-node'), { cuda: existsSync('/dev/nvidia0') })
  } catch (error) {
    if (name === 'node') throw error
    return loadWeb()
  }
}
