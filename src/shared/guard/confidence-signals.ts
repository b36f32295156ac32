// Two signals from the answers a client gets back. The low-confidence share:
// extraction by synthetic or boundary queries lands near decision
// boundaries, where the top probability is low; the share of answers under τ
// is compared with the benign baseline by a one-sided binomial z-score. The
// class-coverage entropy (normalised to [0, 1]): a client whose answers pile
// into one or two classes is walking a boundary; natural traffic spreads.
//
// Bounds: one counter per class up to `maxClasses` (higher classes share
// buckets), plus two counters.

export type ConfidenceOptions = { tau: number; baseline: number; maxClasses: number }
export const DEFAULT_CONFIDENCE_OPTIONS: ConfidenceOptions = { tau: 0.6, baseline: 0.05, maxClasses: 100 }

export type ConfidenceState = { answers: number; lowConfidence: number; classCounts: Uint32Array }

export function createConfidenceState(options: ConfidenceOptions): ConfidenceState {
  return { answers: 0, lowConfidence: 0, classCounts: new Uint32Array(options.maxClasses) }
}

export function observeAnswer(state: ConfidenceState, options: ConfidenceOptions, probabilities: ArrayLike<number>): number {
  let top = 0
  let topClass = 0
  for (let i = 0; i < probabilities.length; i++) {
    const p = probabilities[i]!
    if (p > top) {
      top = p
      topClass = i
    }
  }
  state.answers++
  if (top < options.tau) state.lowConfidence++
  state.classCounts[topClass % options.maxClasses]!++
  return topClass
}

// A label-only answer still counts towards class coverage.
export function observeLabel(state: ConfidenceState, options: ConfidenceOptions, label: number): void {
  state.classCounts[((label % options.maxClasses) + options.maxClasses) % options.maxClasses]!++
}

export function lowConfidenceZ(state: ConfidenceState, options: ConfidenceOptions): number {
  if (state.answers === 0) return 0
  const expected = state.answers * options.baseline
  return (state.lowConfidence - expected) / Math.sqrt(expected * (1 - options.baseline) || 1)
}

// Normalised by log(number of classes seen so far at least once, or 2).
export function classCoverageEntropy(state: ConfidenceState, classes: number): number {
  let total = 0
  for (const count of state.classCounts) total += count
  if (total === 0) return 1
  let entropy = 0
  for (const count of state.classCounts) {
    if (count === 0) continue
    const p = count / total
    entropy -= p * Math.log(p)
  }
  return entropy / Math.log(Math.max(2, Math.min(classes, state.classCounts.length)))
}
