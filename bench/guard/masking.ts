import { argmax } from './mlp.ts'

// The masking modes the bench compares, as a thief receives them. (The
// masking the predict path applies lives with hosted inference; these are
// the bench's own, stated here so the figures say what they measure.)
export const BENCH_MASKING_MODES = ['none', 'round', 'top_1', 'label_only'] as const
export type BenchMaskingMode = (typeof BENCH_MASKING_MODES)[number]

export function mask(probabilities: Float32Array, mode: BenchMaskingMode): Float32Array {
  if (mode === 'none') return probabilities
  const top = argmax(probabilities)
  if (mode === 'label_only') return probabilities.map((_, k) => (k === top ? 1 : 0))
  if (mode === 'round') {
    // One decimal, renormalised.
    const rounded = probabilities.map((p) => Math.round(p * 10) / 10)
    const total = rounded.reduce((sum, p) => sum + p, 0)
    return total > 0 ? rounded.map((p) => p / total) : probabilities.map((_, k) => (k === top ? 1 : 0))
  }
  // top_1: the top probability; the rest spread evenly, revealing nothing.
  const rest = (1 - probabilities[top]!) / (probabilities.length - 1)
  return probabilities.map((p, k) => (k === top ? p : rest))
}
