import type { ArtifactRef } from '../../shared/job-types.ts'
import { probeInputs, probeMatches, type Probe } from '../../shared/inference-wire.ts'
import type { ArtifactCache } from '../artifact-cache.ts'
import type { InferenceBackend, LoadedModel } from './inference-backend.ts'

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

function probeWidth(model: LoadedModel): { name: string; width: number } {
  const input = model.inputs[0]
  if (!input) throw new Error('the model has no inputs')
  const width = input.shape.slice(1).reduce<number>((product, dim) => product * (typeof dim === 'number' && dim > 0 ? dim : 1), 1)
  return { name: input.name, width }
}

async function runProbe(model: LoadedModel, seed: number, rows: number): Promise<Probe> {
  const { name, width } = probeWidth(model)
  const input = model.inputs[0]!
  const innerDims = input.shape.slice(1).map((dim) => (typeof dim === 'number' && dim > 0 ? dim : 1))
  const outputs = await model.run(name, probeInputs(seed, rows, width), [rows, ...innerDims])
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
      const answers = await runProbe(model, probe.seed, probe.rows)
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
