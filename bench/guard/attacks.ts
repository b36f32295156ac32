import { seededRandom } from '../../src/shared/guard/seeded-random.ts'
import type { Digits } from './digits.ts'
import { argmax, createMlp, inputGradient, oneHot, train, type Mlp } from './mlp.ts'

// The thieves. Each asks an oracle (the guarded victim API) and gets back
// what the API answers: probabilities (maybe masked), or null once the
// client is blocked. Each returns what it learned from: its queries and the
// answers it got.

export type Answer = Float32Array | null
export type Oracle = (x: Float32Array) => Answer
export type Transcript = { inputs: Float32Array[]; answers: Float32Array[] }

const clip = (v: number) => Math.min(1, Math.max(0, v))

function record(transcript: Transcript, x: Float32Array, answer: Answer): boolean {
  if (!answer) return false
  transcript.inputs.push(x)
  transcript.answers.push(answer)
  return true
}

// Jacobian-based dataset augmentation (Papernot et al. 2017): a small seed set
// of natural digits, then rounds of x + λ·sign(∇ₓ F_surrogate[label(x)]),
// each labelled by the oracle and the surrogate retrained on labels.
export function jbda(oracle: Oracle, pool: Digits, options: { seedsPerClass: number; rounds: number; lambda: number; budget: number }): Transcript {
  const transcript: Transcript = { inputs: [], answers: [] }
  const seeds: Float32Array[] = []
  for (let digit = 0; digit < 10; digit++) {
    let taken = 0
    for (let i = 0; i < pool.labels.length && taken < options.seedsPerClass; i++) {
      if (pool.labels[i] === digit) {
        seeds.push(pool.images[i]!)
        taken++
      }
    }
  }
  let set: Float32Array[] = []
  for (const x of seeds) if (record(transcript, x, oracle(x))) set.push(x)
  const surrogate = createMlp(784, 32, 10, 41)
  for (let round = 0; round < options.rounds && transcript.inputs.length < options.budget; round++) {
    const labels = set.map((x) => argmax(transcript.answers[transcript.inputs.indexOf(x)]!))
    train(surrogate, set, labels.map((label) => oneHot(label)), { epochs: 3, rate: 0.05, seed: round })
    const next: Float32Array[] = []
    for (let i = 0; i < set.length && transcript.inputs.length < options.budget; i++) {
      const gradient = inputGradient(surrogate, set[i]!, labels[i]!)
      const x = set[i]!.map((v, k) => clip(v + options.lambda * Math.sign(gradient[k]!)))
      if (!record(transcript, x, oracle(x))) return transcript
      next.push(x)
    }
    set = [...set, ...next]
  }
  return transcript
}

export function replay(oracle: Oracle, queries: Float32Array[]): Transcript {
  const transcript: Transcript = { inputs: [], answers: [] }
  for (const x of queries) if (!record(transcript, x, oracle(x))) break
  return transcript
}

export function uniformNoise(count: number, seed: number): Float32Array[] {
  const random = seededRandom(seed)
  return Array.from({ length: count }, () => Float32Array.from({ length: 784 }, () => random()))
}

// Two natural digits of different classes mixed: out of distribution, near
// the boundary between them.
export function blendedDigits(pool: Digits, count: number, seed: number): Float32Array[] {
  const random = seededRandom(seed)
  const out: Float32Array[] = []
  while (out.length < count) {
    const a = Math.floor(random() * pool.images.length)
    const b = Math.floor(random() * pool.images.length)
    if (pool.labels[a] === pool.labels[b]) continue
    const alpha = 0.3 + 0.4 * random()
    out.push(pool.images[a]!.map((v, k) => alpha * v + (1 - alpha) * pool.images[b]![k]!))
  }
  return out
}

// Label-only boundary probing: for a pair of natural digits with different
// labels, a binary search along the segment between them for the point
// where the label flips (the start of boundary or membership attacks that
// see labels only).
export function boundaryProbing(oracle: Oracle, pool: Digits, options: { budget: number; steps: number; seed: number }): Transcript {
  const transcript: Transcript = { inputs: [], answers: [] }
  const random = seededRandom(options.seed)
  while (transcript.inputs.length < options.budget) {
    const a = pool.images[Math.floor(random() * pool.images.length)]!
    const b = pool.images[Math.floor(random() * pool.images.length)]!
    const first = oracle(a)
    if (!record(transcript, a, first)) return transcript
    let low = 0
    let high = 1
    for (let step = 0; step < options.steps; step++) {
      const t = (low + high) / 2
      const x = a.map((v, k) => (1 - t) * v + t * b[k]!)
      const answer = oracle(x)
      if (!record(transcript, x, answer)) return transcript
      if (argmax(answer!) === argmax(first!)) low = t
      else high = t
    }
  }
  return transcript
}

export function trainSurrogate(transcript: Transcript, useProbabilities: boolean, seed: number): Mlp {
  const surrogate = createMlp(784, 64, 10, seed)
  const targets = transcript.answers.map((answer) => (useProbabilities ? answer : oneHot(argmax(answer))))
  train(surrogate, transcript.inputs, targets, { epochs: 8, rate: 0.05, seed })
  return surrogate
}
