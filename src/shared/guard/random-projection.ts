import { seededRandom } from './seeded-random.ts'

// A seeded sparse random projection (sparse Johnson–Lindenstrauss: each input
// coordinate adds ±1/√s to s output coordinates). Distances between projected
// queries approximate distances between the inputs, so PRADA keeps only the
// projected vectors: a client's state no longer grows with the model's input
// size. The layout depends only on (input size, output size, seed), so every
// isolate projects alike; building it costs O(input size) once, and a
// projection costs O(s · input size).

export const MAX_PROJECTION_DIMENSIONS = 128
const NONZEROS_PER_COORDINATE = 4

export type RandomProjectionOptions = { inputDimensions: number; outputDimensions: number; seed: number }
export type RandomProjection = { inputDimensions: number; outputDimensions: number; project(input: ArrayLike<number>): Float32Array }

const layouts = new Map<string, { buckets: Uint8Array; signs: Float32Array }>()

function layoutFor(options: RandomProjectionOptions) {
  const id = `${options.inputDimensions}:${options.outputDimensions}:${options.seed}`
  const cached = layouts.get(id)
  if (cached) return cached
  const s = Math.min(NONZEROS_PER_COORDINATE, options.outputDimensions)
  const random = seededRandom(options.seed)
  const buckets = new Uint8Array(options.inputDimensions * s)
  const signs = new Float32Array(options.inputDimensions * s)
  const scale = 1 / Math.sqrt(s)
  for (let i = 0; i < options.inputDimensions; i++) {
    // s distinct output coordinates per input coordinate.
    for (let j = 0; j < s; j++) {
      let bucket: number
      do bucket = Math.floor(random() * options.outputDimensions)
      while (buckets.subarray(i * s, i * s + j).includes(bucket))
      buckets[i * s + j] = bucket
      signs[i * s + j] = random() < 0.5 ? -scale : scale
    }
  }
  const layout = { buckets, signs }
  if (layouts.size >= 16) layouts.clear()
  layouts.set(id, layout)
  return layout
}

export function createRandomProjection(options: RandomProjectionOptions): RandomProjection {
  const { inputDimensions, outputDimensions } = options
  if (!Number.isInteger(inputDimensions) || inputDimensions < 1) throw new RangeError('inputDimensions must be a positive integer')
  if (!Number.isInteger(outputDimensions) || outputDimensions < 1 || outputDimensions > MAX_PROJECTION_DIMENSIONS) {
    throw new RangeError(`outputDimensions must be an integer from 1 to ${MAX_PROJECTION_DIMENSIONS}`)
  }
  const { buckets, signs } = layoutFor(options)
  const s = buckets.length / inputDimensions
  return {
    inputDimensions,
    outputDimensions,
    project(input) {
      if (input.length !== inputDimensions) throw new RangeError(`expected ${inputDimensions} values, got ${input.length}`)
      const out = new Float32Array(outputDimensions)
      for (let i = 0; i < inputDimensions; i++) {
        const value = input[i]!
        if (value === 0) continue
        const base = i * s
        for (let j = 0; j < s; j++) out[buckets[base + j]!]! += value * signs[base + j]!
      }
      return out
    },
  }
}
