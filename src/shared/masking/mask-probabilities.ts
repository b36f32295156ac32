import { z } from 'zod'

// Confidence masking: what a classifier's answer reveals beyond its label.
// Each mode keeps the top-1 label (the answer a legitimate client needs) and
// gives away less of the rest, which model-stealing and inversion attacks
// feed on. The noise is a function of the input, so asking the same question
// again returns the same answer and averaging reveals nothing.

export const MASKING_MODES = ['none', 'top_k', 'round', 'label_only', 'noise', 'reverse_sigmoid'] as const
export type MaskingMode = (typeof MASKING_MODES)[number]

export const maskingPolicySchema = z.strictObject({
  mode: z.enum(MASKING_MODES).default('none'),
  // top_k: how many classes keep their probability (the others read 0).
  k: z.number().int().min(1).max(100).default(3),
  // round: decimals kept.
  decimals: z.number().int().min(0).max(6).default(2),
  // noise: standard deviation of the Gaussian noise added to each probability.
  sigma: z.number().min(0).max(1).default(0.05),
  // reverse_sigmoid (Lee et al. 2019): strength β and slope γ of the perturbation.
  beta: z.number().min(0).max(2).default(0.5),
  gamma: z.number().gt(0).max(10).default(0.5),
})
export type MaskingPolicy = z.output<typeof maskingPolicySchema>

export type MaskedAnswer = { label: number; probabilities: number[] | null }

function argmax(values: ArrayLike<number>): number {
  let best = 0
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i
  return best
}

function normalise(values: number[]): number[] {
  const total = values.reduce((sum, value) => sum + value, 0)
  return total > 0 ? values.map((value) => value / total) : values.map(() => 1 / values.length)
}

// Makes `top` the strict maximum again if a perturbation overtook it.
function keepTop(values: number[], top: number): number[] {
  const others = Math.max(...values.filter((_, i) => i !== top))
  if (values[top]! > others) return values
  const lifted = values.slice()
  lifted[top] = others + 1e-6
  return normalise(lifted)
}

// A Gaussian sample from a seeded stream (mulberry32 + Box–Muller).
function gaussianStream(seed: number): () => number {
  let state = seed >>> 0
  const uniform = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297
  }
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform())
}

const logit = (p: number) => Math.log(p / (1 - p))
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x))

// `seed` should come from the input (a hash of it), for the noise modes.
export function maskProbabilities(probabilities: ArrayLike<number>, policy: MaskingPolicy, seed = 0): MaskedAnswer {
  const values = Array.from(probabilities)
  const label = argmax(values)
  switch (policy.mode) {
    case 'none':
      return { label, probabilities: values }
    case 'label_only':
      return { label, probabilities: null }
    case 'round': {
      const factor = 10 ** policy.decimals
      return { label, probabilities: values.map((value) => Math.round(value * factor) / factor) }
    }
    case 'top_k': {
      const kept = new Set(
        values
          .map((value, index) => [value, index] as const)
          .sort((a, b) => b[0] - a[0])
          .slice(0, policy.k)
          .map(([, index]) => index),
      )
      return { label, probabilities: values.map((value, index) => (kept.has(index) ? value : 0)) }
    }
    case 'noise': {
      const next = gaussianStream(seed)
      const noisy = normalise(values.map((value) => Math.max(0, value + policy.sigma * next())))
      return { label, probabilities: keepTop(noisy, label) }
    }
    case 'reverse_sigmoid': {
      // y' = normalise(y − β(σ(γ·σ⁻¹(y)) − ½)): pushes every probability
      // towards a misleading value while the ranking of the top class stays.
      const epsilon = 1e-7
      const perturbed = values.map((value) => {
        const y = Math.min(1 - epsilon, Math.max(epsilon, value))
        return Math.max(epsilon, y - policy.beta * (sigmoid(policy.gamma * logit(y)) - 0.5))
      })
      return { label, probabilities: keepTop(normalise(perturbed), label) }
    }
  }
}

// A 32-bit seed from the input's values, so the same input gets the same noise.
export function inputSeed(input: ArrayLike<number>, salt = 0): number {
  let hash = (2166136261 ^ salt) >>> 0
  const view = new DataView(new ArrayBuffer(4))
  for (let i = 0; i < input.length; i++) {
    view.setFloat32(0, input[i]!)
    hash = Math.imul(hash ^ view.getUint32(0), 16777619) >>> 0
  }
  return hash
}
