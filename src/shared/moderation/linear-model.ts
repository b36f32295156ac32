import { OMNI_CATEGORIES, type Category } from './categories.ts'

// The learned part: per-head logistic weights over hashed features, int8 with
// one scale per head, and a Platt calibration per head fitted on held-out
// data. `npm run train:moderation` writes the file this reads.
export const MODEL_HEADS = [...OMNI_CATEGORIES, 'injection'] as const
export type ModelHead = (typeof MODEL_HEADS)[number]

export type ModelWeightsFile = {
  version: string
  buckets: number
  heads: readonly string[]
  scales: readonly number[]
  bias: readonly number[]
  // score = sigmoid(a * logit + b)
  calibration: readonly (readonly [number, number])[]
  // Default thresholds chosen on the validation split (see the README).
  thresholds: Record<Category | 'injection', number>
  // buckets × heads int8 values, bucket-major, base64.
  weights: string
}

export type LinearModel = {
  readonly version: string
  readonly heads: readonly string[]
  readonly thresholds: ModelWeightsFile['thresholds']
  // Sums the logits of every head for the hashed features into `logits`.
  logits(hashes: readonly number[], hashWeight: number, named: readonly number[], out: Float64Array): void
  // The same, for n-grams handed over one at a time by `visit` (which
  // returns their count, for the weight): no array of hashes in between.
  // `bare`, when given, receives the logits without the named features in
  // the same pass, equal to those of a call with `named` empty.
  streamLogits(visit: (emit: (hash: number) => void) => number, weightOf: (count: number) => number, named: readonly number[], out: Float64Array, bare?: Float64Array): void
  calibrate(head: number, logit: number): number
}

function decodeBase64(text: string): Int8Array {
  const binary = atob(text)
  const bytes = new Int8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = (binary.charCodeAt(i) << 24) >> 24
  return bytes
}

export function loadLinearModel(file: ModelWeightsFile): LinearModel {
  if (file.heads.join() !== MODEL_HEADS.join()) throw new Error(`weights ${file.version} have heads ${file.heads.join()}, expected ${MODEL_HEADS.join()}`)
  const weights = decodeBase64(file.weights)
  const heads = file.heads.length
  if (weights.length !== file.buckets * heads) throw new Error(`weights ${file.version} hold ${weights.length} values, expected ${file.buckets * heads}`)
  const mask = file.buckets - 1
  const sums = new Int32Array(heads)
  const namedSums = new Int32Array(heads)
  const add = (hash: number) => {
    const base = (hash & mask) * heads
    for (let h = 0; h < heads; h++) sums[h] = sums[h]! + weights[base + h]!
  }
  return {
    version: file.version,
    heads: file.heads,
    thresholds: file.thresholds,
    logits(hashes, hashWeight, named, out) {
      sums.fill(0)
      namedSums.fill(0)
      for (const hash of hashes) {
        const base = (hash & mask) * heads
        for (let h = 0; h < heads; h++) sums[h] = sums[h]! + weights[base + h]!
      }
      for (const hash of named) {
        const base = (hash & mask) * heads
        for (let h = 0; h < heads; h++) namedSums[h] = namedSums[h]! + weights[base + h]!
      }
      for (let h = 0; h < heads; h++) out[h] = file.bias[h]! + file.scales[h]! * (sums[h]! * hashWeight + namedSums[h]!)
    },
    streamLogits(visit, weightOf, named, out, bare) {
      sums.fill(0)
      namedSums.fill(0)
      const count = visit(add)
      for (const hash of named) {
        const base = (hash & mask) * heads
        for (let h = 0; h < heads; h++) namedSums[h] = namedSums[h]! + weights[base + h]!
      }
      const hashWeight = weightOf(count)
      for (let h = 0; h < heads; h++) out[h] = file.bias[h]! + file.scales[h]! * (sums[h]! * hashWeight + namedSums[h]!)
      // `+ 0` as when no named feature is summed: keeps -0 from making the two differ.
      if (bare) for (let h = 0; h < heads; h++) bare[h] = file.bias[h]! + file.scales[h]! * (sums[h]! * hashWeight + 0)
    },
    calibrate(head, logit) {
      const [a, b] = file.calibration[head]!
      return 1 / (1 + Math.exp(-(a * logit + b)))
    },
  }
}
