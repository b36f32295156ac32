import { z } from 'zod'

// Confidence masking: what a classifier's answer reveals beyond its label.
// Each mode gives away less of what model-stealing and inversion attacks feed
// on; the top-1 label (the answer a legitimate client needs) is kept unless a
// policy says otherwise. The noise comes from a seed the caller derives from
// a secret, the client and the input (see keyedSeed), so the same client
// asking the same question gets the same answer and cannot average it away,
// and nobody without the secret can compute the noise.

export const MASKING_MODES = ['none', 'top_k', 'round', 'label_only', 'noise', 'reverse_sigmoid'] as const
export type MaskingMode = (typeof MASKING_MODES)[number]

export const maskingPolicySchema = z.strictObject({
  mode: z.enum(MASKING_MODES).default('none'),
  // top_k: how many classes keep their probability (the others read 0), and
  // whether the kept ones are scaled to sum to one.
  k: z.number().int().min(1).max(100).default(3),
  renormalize: z.boolean().default(false),
  // round: decimals kept.
  decimals: z.number().int().min(0).max(6).default(2),
  // noise: the scale of the noise added to each probability (the standard
  // deviation for gaussian, the scale b for laplace).
  sigma: z.number().min(0).max(1).default(0.05),
  distribution: z.enum(['gaussian', 'laplace']).default('gaussian'),
  // noise, reverse_sigmoid: whether the top-1 label must survive the perturbation.
  keep_top1: z.boolean().default(true),
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

// Samples from a seeded stream (mulberry32): Gaussian by Box–Muller, Laplace
// by the inverse CDF.
function noiseStream(seed: number, distribution: 'gaussian' | 'laplace'): () => number {
  let state = seed >>> 0
  const uniform = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297
  }
  if (distribution === 'laplace') {
    return () => {
      const u = uniform() - 0.5
      return -Math.sign(u) * Math.log(1 - 2 * Math.abs(u))
    }
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
          .sort((a, b) => b[0] - a[0] || a[1] - b[1])
          .slice(0, policy.k)
          .map(([, index]) => index),
      )
      const top = values.map((value, index) => (kept.has(index) ? value : 0))
      return { label, probabilities: policy.renormalize ? normalise(top) : top }
    }
    case 'noise': {
      const next = noiseStream(seed, policy.distribution)
      const noisy = normalise(values.map((value) => Math.max(0, value + policy.sigma * next())))
      return policy.keep_top1 ? { label, probabilities: keepTop(noisy, label) } : { label: argmax(noisy), probabilities: noisy }
    }
    case 'reverse_sigmoid': {
      // y' = normalise(y − β(σ(γ·σ⁻¹(y)) − ½)): pushes every probability
      // towards a misleading value while the ranking of the top class stays.
      const epsilon = 1e-7
      const perturbed = values.map((value) => {
        const y = Math.min(1 - epsilon, Math.max(epsilon, value))
        return Math.max(epsilon, y - policy.beta * (sigmoid(policy.gamma * logit(y)) - 0.5))
      })
      const masked = normalise(perturbed)
      return policy.keep_top1 ? { label, probabilities: keepTop(masked, label) } : { label: argmax(masked), probabilities: masked }
    }
  }
}

// The noise seed for one answer: HMAC(secret, client, canonical input), so it
// repeats for the same client and input and cannot be computed without the
// secret. The input is canonical as float32 little-endian, whatever its JSON.
export async function keyedSeed(secret: Awaited<ReturnType<typeof crypto.subtle.importKey>>, client: string, input: ArrayLike<number>): Promise<number> {
  const clientBytes = new TextEncoder().encode(`${client}\n`)
  const bytes = new Uint8Array(clientBytes.length + input.length * 4)
  bytes.set(clientBytes)
  const view = new DataView(bytes.buffer)
  for (let i = 0; i < input.length; i++) view.setFloat32(clientBytes.length + i * 4, input[i]!, true)
  const mac = await crypto.subtle.sign('HMAC', secret, bytes)
  return new DataView(mac).getUint32(0)
}
