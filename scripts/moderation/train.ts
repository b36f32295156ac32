import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { MODEL_HEADS, loadLinearModel, type ModelWeightsFile } from '../../src/shared/moderation/linear-model.ts'
import { loadExamples, seededRandom, type Example } from './datasets.ts'
import { featurize } from './featurize.ts'

// Trains the moderation engine's linear model: multi-label logistic
// regression over hashed n-grams and cue features (AdaGrad, L2), seeded so a
// run gives the same bytes. Then, on the validation split: a Platt
// calibration per head and the default threshold per head (best F1 that
// leaves benign text alone).
// Writes src/shared/moderation/moderation-weights.ts.

const SEED = 20261128
const BUCKETS = 1 << 15
const EPOCHS = 6
const LEARNING_RATE = 0.2
const L2 = 1e-6
// The project's own examples are few beside tens of thousands of tweets.
const SYNTHETIC_WEIGHT = 4
const VERSION = 'moat-moderation-1'
const MIN_POSITIVES = 40
const MAX_BENIGN_FLAGGED = 0.01
const OUT = join(import.meta.dirname, '../../src/shared/moderation/moderation-weights.ts')

const H = MODEL_HEADS.length
type Row = { hashes: Int32Array; hashWeight: number; named: Int32Array; labels: Float32Array; weight: number }

function toRow(example: Example): Row | null {
  const features = featurize(example.text, 1)
  const window = features.windows[0]
  if (!window) return null
  const labels = new Float32Array(H).fill(-1)
  MODEL_HEADS.forEach((head, h) => {
    const label = example.labels[head]
    if (label !== undefined) labels[h] = label
  })
  return {
    hashes: Int32Array.from(window.hashes, (hash) => hash & (BUCKETS - 1)),
    hashWeight: window.hashWeight,
    named: Int32Array.from(features.named, (hash) => hash & (BUCKETS - 1)),
    labels,
    weight: example.source.startsWith('synthetic') ? SYNTHETIC_WEIGHT : 1,
  }
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z))

function train(rows: Row[]) {
  const w = new Float64Array(BUCKETS * H)
  const g2 = new Float64Array(BUCKETS * H).fill(1e-8)
  const bias = new Float64Array(H)
  const random = seededRandom(SEED)
  const order = rows.map((_, i) => i)
  const z = new Float64Array(H)
  const grad = new Float64Array(H)
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      ;[order[i], order[j]] = [order[j]!, order[i]!]
    }
    let loss = 0
    for (const index of order) {
      const row = rows[index]!
      z.set(bias)
      for (const b of row.hashes) for (let h = 0; h < H; h++) z[h] = z[h]! + w[b * H + h]! * row.hashWeight
      for (const b of row.named) for (let h = 0; h < H; h++) z[h] = z[h]! + w[b * H + h]!
      for (let h = 0; h < H; h++) {
        const y = row.labels[h]!
        if (y < 0) {
          grad[h] = 0
          continue
        }
        const p = sigmoid(z[h]!)
        loss -= row.weight * (y ? Math.log(p + 1e-12) : Math.log(1 - p + 1e-12))
        grad[h] = (p - y) * row.weight
        bias[h] = bias[h]! - 0.01 * grad[h]!
      }
      const update = (b: number, x: number) => {
        for (let h = 0; h < H; h++) {
          const g = grad[h]!
          if (g === 0) continue
          const k = b * H + h
          const gx = g * x + L2 * w[k]!
          g2[k] = g2[k]! + gx * gx
          w[k] = w[k]! - (LEARNING_RATE * gx) / Math.sqrt(g2[k]!)
        }
      }
      for (const b of row.hashes) update(b, row.hashWeight)
      for (const b of row.named) update(b, 1)
    }
    console.log(`epoch ${epoch + 1}: loss ${(loss / rows.length).toFixed(4)}`)
  }
  return { w, bias }
}

function quantize(w: Float64Array, bias: Float64Array): ModelWeightsFile {
  const scales = MODEL_HEADS.map((_, h) => {
    let max = 0
    for (let b = 0; b < BUCKETS; b++) max = Math.max(max, Math.abs(w[b * H + h]!))
    return max / 127 || 1
  })
  const bytes = new Uint8Array(BUCKETS * H)
  for (let k = 0; k < bytes.length; k++) bytes[k] = Math.round(w[k]! / scales[k % H]!) & 0xff
  return {
    version: VERSION,
    buckets: BUCKETS,
    heads: MODEL_HEADS,
    scales: scales.map((s) => Number(s.toPrecision(6))),
    bias: Array.from(bias, (b) => Number(b.toFixed(5))),
    calibration: MODEL_HEADS.map(() => [1, 0] as const),
    thresholds: Object.fromEntries(MODEL_HEADS.map((head) => [head, 0.5])) as ModelWeightsFile['thresholds'],
    weights: Buffer.from(bytes).toString('base64'),
  }
}

// Highest-window logits per head, as the engine reads a text.
function headLogits(file: ModelWeightsFile, texts: readonly string[]): Float64Array[] {
  const model = loadLinearModel(file)
  const out = new Float64Array(H)
  return texts.map((text) => {
    const features = featurize(text)
    const best = new Float64Array(H).fill(-Infinity)
    for (const window of features.windows) {
      model.logits(window.hashes, window.hashWeight, features.named, out)
      for (let h = 0; h < H; h++) best[h] = Math.max(best[h]!, out[h]!)
    }
    return best
  })
}

function fitPlatt(logits: number[], labels: number[]): [number, number] {
  let a = 1
  let b = 0
  for (let step = 0; step < 400; step++) {
    let ga = 0
    let gb = 0
    for (let i = 0; i < logits.length; i++) {
      const g = sigmoid(a * logits[i]! + b) - labels[i]!
      ga += g * logits[i]!
      gb += g
    }
    a -= (0.5 * ga) / logits.length
    b -= (0.5 * gb) / logits.length
  }
  return [Number(a.toFixed(4)), Number(b.toFixed(4))]
}

// The threshold with the best F1 among those that flag at most 1 % of the
// benign validation texts (help-seeking, medical, technical, counter-speech,
// everyday, harmless tweets and comments) on this head.
function bestThreshold(scores: number[], labels: number[], benign: number[]): number {
  let best = 0.5
  let bestF1 = -1
  for (let t = 0.1; t <= 0.901; t += 0.05) {
    if (benign.filter((s) => s >= t).length > MAX_BENIGN_FLAGGED * benign.length) continue
    let tp = 0
    let fp = 0
    let fn = 0
    scores.forEach((s, i) => {
      if (s >= t && labels[i]) tp++
      else if (s >= t) fp++
      else if (labels[i]) fn++
    })
    const f1 = (2 * tp) / (2 * tp + fp + fn || 1)
    if (f1 > bestF1 + 1e-9) {
      bestF1 = f1
      best = Number(t.toFixed(2))
    }
  }
  return best
}

function main() {
  const examples = loadExamples()
  const started = Date.now()
  const rows = examples.filter((e) => e.split === 'train').map(toRow).filter((r): r is Row => r !== null)
  console.log(`${rows.length} training rows featurized in ${Date.now() - started} ms`)
  const { w, bias } = train(rows)
  const file = quantize(w, bias)

  const validation = examples.filter((e) => e.split === 'validation')
  const logits = headLogits(file, validation.map((e) => e.text))
  const benign = validation.flatMap((e, i) => (e.unsafe === false ? [i] : []))
  const perHead = MODEL_HEADS.map((head, h) => {
    const known = validation.flatMap((e, i) => (e.labels[head] === undefined || !Number.isFinite(logits[i]![h]!) ? [] : [i]))
    return { head, h, z: known.map((i) => logits[i]![h]!), y: known.map((i) => validation[i]!.labels[head]!) }
  })
  const benignScores = (h: number, platt: [number, number]) => benign.map((i) => sigmoid(platt[0] * logits[i]![h]! + platt[1]))
  // Heads with few validation positives (those only the project's own
  // examples cover) keep the model's own probabilities and share one
  // threshold, chosen on them pooled: a per-head fit on a handful of
  // positives would be noise.
  const sparse = perHead.filter((p) => p.y.filter((v) => v === 1).length < MIN_POSITIVES)
  const pooledZ = sparse.flatMap((p) => p.z)
  const pooledY = sparse.flatMap((p) => p.y)
  const pooledPlatt: [number, number] = [1, 0]
  const pooledThreshold = bestThreshold(
    pooledZ.map((v) => sigmoid(pooledPlatt[0] * v + pooledPlatt[1])),
    pooledY,
    sparse.flatMap((p) => benignScores(p.h, pooledPlatt)),
  )
  const calibration: [number, number][] = []
  const thresholds: Record<string, number> = {}
  for (const { head, h, z, y } of perHead) {
    const positives = y.filter((v) => v === 1).length
    const pooled = positives < MIN_POSITIVES
    const platt = pooled ? pooledPlatt : fitPlatt(z, y)
    calibration.push(platt)
    thresholds[head] = pooled ? pooledThreshold : bestThreshold(z.map((v) => sigmoid(platt[0] * v + platt[1])), y, benignScores(h, platt))
    console.log(`${head}: ${positives}/${y.length} positive in validation${pooled ? ' (pooled)' : ''}, calibration ${platt}, threshold ${thresholds[head]}`)
  }
  const final: ModelWeightsFile = { ...file, calibration, thresholds: thresholds as ModelWeightsFile['thresholds'] }
  writeFileSync(
    OUT,
    `// Generated by \`npm run train:moderation\` (scripts/moderation/train.ts); do not edit.\n` +
      `// Trained on ../shared/data/moderation (see the README for sources and licences) and the project's own examples.\n` +
      `import type { ModelWeightsFile } from './linear-model.ts'\n\n` +
      `export const MODERATION_WEIGHTS: ModelWeightsFile = ${JSON.stringify({ ...final, weights: '@@' }, null, 2).replace('"@@"', `'${final.weights}'`)}\n`,
  )
  console.log(`wrote ${OUT}`)
}

main()
