import { maskingPolicySchema, maskProbabilities, inputSeed, type MaskingMode, type MaskingPolicy } from '../../shared/masking/mask-probabilities.ts'

// How much a mode hides: a client the guard degrades never gets an answer
// that reveals more than the model's own policy allows.
const STRICTNESS: Record<MaskingMode, number> = { none: 0, round: 1, top_k: 2, noise: 3, reverse_sigmoid: 4, label_only: 5 }

export function effectiveMasking(modelPolicy: unknown, degradedTo: MaskingMode | null): MaskingPolicy {
  const own = maskingPolicySchema.parse((modelPolicy as { masking?: unknown } | null)?.masking ?? {})
  if (!degradedTo || STRICTNESS[degradedTo] <= STRICTNESS[own.mode]) return own
  return { ...own, mode: degradedTo }
}

// Masks each row's probabilities, seeding the noise modes with the row's input.
export function maskRows(rows: number[][], inputs: number[][], policy: MaskingPolicy) {
  return rows.map((probabilities, row) => maskProbabilities(probabilities, policy, inputSeed(inputs[row] ?? [])))
}
