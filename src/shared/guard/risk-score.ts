// One risk score in [0, 1] from every signal, with its explanation. Each
// signal maps its measure to a strength in [0, 1] (0 below its threshold,
// 0.5 at it, 1 well past it); strengths combine as independent evidence
// (noisy-OR: 1 − Π(1 − weight · strength)), so two half-convinced signals
// outweigh one, and no signal alone exceeds its weight.

export const SIGNAL_NAMES = ['prada', 'near_duplicates', 'low_confidence', 'class_coverage', 'logit_bias_sweep', 'templated_prompts', 'volume'] as const
export type SignalName = (typeof SIGNAL_NAMES)[number]

export type SignalReading = {
  signal: SignalName
  // The measured value and the threshold it is compared with, as the policy
  // states them (for PRADA, W and δ: lower is worse).
  value: number
  threshold: number
  strength: number
  detail: string
}

export const SIGNAL_WEIGHTS: Record<SignalName, number> = {
  prada: 1,
  near_duplicates: 1,
  low_confidence: 0.9,
  class_coverage: 0.4,
  logit_bias_sweep: 1,
  templated_prompts: 0.7,
  volume: 0.5,
}

const clamp01 = (x: number) => Math.min(1, Math.max(0, x))

// Strength of a measure that is bad when high: 0.5 at the threshold, 1 at
// `threshold + span`, 0 below the threshold.
export function strengthAbove(value: number, threshold: number, span: number): number {
  if (!(value >= threshold)) return 0
  return clamp01(0.5 + (0.5 * (value - threshold)) / span)
}

// Strength of a measure that is bad when low (PRADA's W).
export function strengthBelow(value: number, threshold: number, span: number): number {
  if (!(value < threshold)) return 0
  return clamp01(0.5 + (0.5 * (threshold - value)) / span)
}

export type RiskAssessment = { score: number; signals: SignalReading[] }

export function riskScore(readings: readonly SignalReading[]): RiskAssessment {
  let clean = 1
  for (const reading of readings) clean *= 1 - SIGNAL_WEIGHTS[reading.signal] * clamp01(reading.strength)
  const signals = readings.filter((reading) => reading.strength > 0).sort((a, b) => b.strength * SIGNAL_WEIGHTS[b.signal] - a.strength * SIGNAL_WEIGHTS[a.signal])
  return { score: Math.round((1 - clean) * 1e4) / 1e4, signals }
}

export function explainRisk(assessment: RiskAssessment): string {
  if (assessment.signals.length === 0) return 'no signal above its threshold'
  return assessment.signals.map((reading) => `${reading.signal} ${Math.round(reading.strength * 100)}%: ${reading.detail}`).join('; ')
}
