import type { ArtifactRef } from '../../shared/job-types.ts'
import { probeInputs, probeMatches, type Probe } from '../../shared/inference-wire.ts'
import type { ArtifactCache } from '../artifact-cache.ts'
import { ModelLoadError, type InferenceBackend, type LoadedModel } from './inference-backend.ts'

// Loaded models by artifact SHA-256, least recently used evicted. A model is
// loaded only from a file whose hash verified, and served only if it gives
// its registered answers on the behavioural probe: a wrong or tampered
// artifact is refused before any client sees an answer.

export class ModelRefusedError extends Error {
  override readonly name = 'ModelRefusedError'
  readonly code: 'artifact_missing' | 'artifact_mismatch' | 'probe_mismatch'

  constructor(code: ModelRefusedError['code'], message: string) {
    super(message)
    this.code = code
  }
}

export type ModelCacheOptions = { backend: InferenceBackend; artifacts: ArtifactCache; capacity: number }

export type ModelCache = {
  get(artifact: ArtifactRef, probe: Probe | null): Promise<LoadedModel>
  // Runs the probe on a model and returns its outputs (registration).
  probe(model: LoadedModel, seed: number, rows: number): Promise<Probe>
  size(): number
}

// A probe's size is the model's to choose (its input and output shapes), so
// it is bounded before anything is allocated for it: a crafted file cannot
// make the runner allocate without limit or build an answer too large to send.
export const MAX_PROBE_INPUT_VALUES = 1 << 24
export const MAX_PROBE_OUTPUT_VALUES = 1 << 22

const staticDims = (shape: readonly (number | string)[]) => shape.map((dim) => (typeof dim === 'number' && dim > 0 ? dim : 1))
const product = (dims: readonly number[]) => dims.reduce((total, dim) => total * dim, 1)

function probeInput(model: LoadedModel, rows: number): { name: string; width: number; innerDims: number[] } {
  const input = model.inputs[0]
  if (!input) throw new ModelLoadError('the model has no inputs')
  const innerDims = staticDims(input.shape.slice(1))
  const width = product(innerDims)
  if (rows * width > MAX_PROBE_INPUT_VALUES) {
    throw new ModelLoadError(`input ${input.name} of shape [${input.shape.join(', ')}] takes ${width} values per row; at most ${Math.floor(MAX_PROBE_INPUT_VALUES / rows)} are probed`)
  }
  for (const output of model.outputs) {
    const values = rows * product(staticDims(output.shape.slice(1)))
    if (values > MAX_PROBE_OUTPUT_VALUES) {
      throw new ModelLoadError(`output ${output.name} of shape [${output.shape.join(', ')}] gives ${values} values for ${rows} rows; at most ${MAX_PROBE_OUTPUT_VALUES} are kept`)
    }
  }
  return { name: input.name, width, innerDims }
}

// Runs the probe on a model and returns its outputs. A model that fails on
// it fails with the runtime's own message as a ModelLoadError: it is the
// file's fault, not the request's.
async function runProbe(model: LoadedModel, seed: number, rows: number): Promise<Probe> {
  const { name, width, innerDims } = probeInput(model, rows)
  let outputs
  try {
    outputs = await model.run(name, probeInputs(seed, rows, width), [rows, ...innerDims])
  } catch (error) {
    throw new ModelLoadError(`the model fails on its probe inputs: ${error instanceof Error ? error.message : String(error)}`)
  }
  const values = Object.values(outputs).reduce((total, tensor) => total + tensor.data.length, 0)
  if (values > MAX_PROBE_OUTPUT_VALUES) throw new ModelLoadError(`the model gives ${values} output values for ${rows} probe rows; at most ${MAX_PROBE_OUTPUT_VALUES} are kept`)
  // NaN or ±Infinity on ordinary inputs: the weights are broken, and such an
  // answer could neither be recorded (JSON has no NaN) nor ever match again.
  for (const [key, tensor] of Object.entries(outputs)) {
    const data = tensor.data as ArrayLike<number>
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) throw new ModelLoadError(`the model answers non-finite values (${data[i]}) in output ${key} on its probe inputs`)
    }
  }
  return { seed, rows, outputs: Object.fromEntries(Object.entries(outputs).map(([key, tensor]) => [key, Array.from(tensor.data)])) }
}

export function createModelCache(options: ModelCacheOptions): ModelCache {
  const loaded = new Map<string, Promise<LoadedModel>>()

  const load = async (artifact: ArtifactRef, probe: Probe | null): Promise<LoadedModel> => {
    const fetched = await options.artifacts.fetchVerified(artifact)
    if (fetched.status === 'missing') throw new ModelRefusedError('artifact_missing', `artifact ${artifact.name} is missing`)
    if (fetched.status === 'mismatch') {
      throw new ModelRefusedError('artifact_mismatch', `artifact ${artifact.name} does not hash to its recorded SHA-256; it is never loaded`)
    }
    const model = await options.backend.load(fetched.path)
    if (probe) {
      const answers = await runProbe(model, probe.seed, probe.rows).catch(async (error: unknown) => {
        await model.release()
        throw error
      })
      if (!probeMatches(probe.outputs, answers.outputs)) {
        await model.release()
        throw new ModelRefusedError('probe_mismatch', 'the model no longer gives its registered answers on the behavioural probe; it is not served')
      }
    }
    return model
  }

  return {
    async get(artifact, probe) {
      const cached = loaded.get(artifact.sha256)
      if (cached) {
        // Most recently used goes last.
        loaded.delete(artifact.sha256)
        loaded.set(artifact.sha256, cached)
        return cached
      }
      const pending = load(artifact, probe)
      loaded.set(artifact.sha256, pending)
      pending.catch(() => loaded.delete(artifact.sha256))
      while (loaded.size > options.capacity) {
        const [oldest, model] = loaded.entries().next().value as [string, Promise<LoadedModel>]
        loaded.delete(oldest)
        void model.then((m) => m.release(), () => undefined)
      }
      return pending
    },
    probe: runProbe,
    size: () => loaded.size,
  }
}
