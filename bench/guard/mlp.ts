import { seededRandom } from '../../src/shared/guard/seeded-random.ts'

// A small multilayer perceptron (784 → hidden → 10, ReLU, softmax) in plain
// TypeScript: the victim, and every thief's surrogate. Trained with
// minibatch SGD on soft targets (a one-hot label is a soft target too), so a
// thief can distil probabilities or learn from labels alike.

export type Mlp = { inputs: number; hidden: number; classes: number; w1: Float32Array; b1: Float32Array; w2: Float32Array; b2: Float32Array }

export function createMlp(inputs: number, hidden: number, classes: number, seed: number): Mlp {
  const random = seededRandom(seed)
  const init = (n: number, fanIn: number) => Float32Array.from({ length: n }, () => (random() * 2 - 1) * Math.sqrt(6 / fanIn))
  return { inputs, hidden, classes, w1: init(hidden * inputs, inputs), b1: new Float32Array(hidden), w2: init(classes * hidden, hidden), b2: new Float32Array(classes) }
}

function hiddenLayer(model: Mlp, x: Float32Array, out: Float32Array): void {
  for (let h = 0; h < model.hidden; h++) {
    let sum = model.b1[h]!
    const row = h * model.inputs
    for (let i = 0; i < model.inputs; i++) sum += model.w1[row + i]! * x[i]!
    out[h] = sum > 0 ? sum : 0
  }
}

function softmaxInto(logits: Float32Array): void {
  let max = -Infinity
  for (const v of logits) max = Math.max(max, v)
  let total = 0
  for (let k = 0; k < logits.length; k++) {
    logits[k] = Math.exp(logits[k]! - max)
    total += logits[k]!
  }
  for (let k = 0; k < logits.length; k++) logits[k]! /= total
}

export function predict(model: Mlp, x: Float32Array): Float32Array {
  const h = new Float32Array(model.hidden)
  hiddenLayer(model, x, h)
  const out = new Float32Array(model.classes)
  for (let k = 0; k < model.classes; k++) {
    let sum = model.b2[k]!
    for (let j = 0; j < model.hidden; j++) sum += model.w2[k * model.hidden + j]! * h[j]!
    out[k] = sum
  }
  softmaxInto(out)
  return out
}

export const argmax = (p: ArrayLike<number>) => {
  let best = 0
  for (let k = 1; k < p.length; k++) if (p[k]! > p[best]!) best = k
  return best
}

export function train(model: Mlp, inputs: Float32Array[], targets: Float32Array[], options: { epochs: number; rate: number; seed: number }): void {
  const random = seededRandom(options.seed)
  const order = inputs.map((_, i) => i)
  const h = new Float32Array(model.hidden)
  const p = new Float32Array(model.classes)
  const dh = new Float32Array(model.hidden)
  for (let epoch = 0; epoch < options.epochs; epoch++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      ;[order[i], order[j]] = [order[j]!, order[i]!]
    }
    const rate = options.rate / (1 + epoch * 0.5)
    for (const index of order) {
      const x = inputs[index]!
      const y = targets[index]!
      hiddenLayer(model, x, h)
      for (let k = 0; k < model.classes; k++) {
        let sum = model.b2[k]!
        for (let j = 0; j < model.hidden; j++) sum += model.w2[k * model.hidden + j]! * h[j]!
        p[k] = sum
      }
      softmaxInto(p)
      dh.fill(0)
      for (let k = 0; k < model.classes; k++) {
        const g = p[k]! - y[k]!
        if (g === 0) continue
        const row = k * model.hidden
        for (let j = 0; j < model.hidden; j++) {
          dh[j]! += g * model.w2[row + j]!
          model.w2[row + j]! -= rate * g * h[j]!
        }
        model.b2[k]! -= rate * g
      }
      for (let j = 0; j < model.hidden; j++) {
        if (h[j]! <= 0) continue
        const g = dh[j]!
        const row = j * model.inputs
        for (let i = 0; i < model.inputs; i++) if (x[i] !== 0) model.w1[row + i]! -= rate * g * x[i]!
        model.b1[j]! -= rate * g
      }
    }
  }
}

// ∂ logit_c / ∂ x, for Jacobian-based dataset augmentation.
export function inputGradient(model: Mlp, x: Float32Array, c: number): Float32Array {
  const h = new Float32Array(model.hidden)
  hiddenLayer(model, x, h)
  const grad = new Float32Array(model.inputs)
  for (let j = 0; j < model.hidden; j++) {
    if (h[j]! <= 0) continue
    const weight = model.w2[c * model.hidden + j]!
    const row = j * model.inputs
    for (let i = 0; i < model.inputs; i++) grad[i]! += weight * model.w1[row + i]!
  }
  return grad
}

export function oneHot(label: number, classes = 10): Float32Array {
  const out = new Float32Array(classes)
  out[label] = 1
  return out
}
