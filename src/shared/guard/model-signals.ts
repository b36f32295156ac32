import { classCoverageEntropy, createConfidenceState, lowConfidenceZ, observeAnswer, observeLabel, type ConfidenceOptions, type ConfidenceState } from './confidence-signals.ts'
import type { GuardPolicy } from './guard-policy.ts'
import { createLogitBiasState, DEFAULT_LOGIT_BIAS_OPTIONS, observeLogitBias, type LogitBiasState } from './logit-bias-sweep.ts'
import { createPradaState, DEFAULT_PRADA_OPTIONS, observePrada, type PradaOptions, type PradaState } from './prada.ts'
import { createQueryHashingState, DEFAULT_QUERY_HASHING_OPTIONS, fingerprint, fingerprintText, observeQueryHashes, recentMatches, type QueryHashingOptions, type QueryHashingState } from './query-hashing.ts'
import { createRandomProjection } from './random-projection.ts'
import { strengthAbove, strengthBelow, type SignalReading } from './risk-score.ts'
import { createTemplateState, DEFAULT_TEMPLATE_OPTIONS, dominantTemplateShare, observePrompt, type TemplateState } from './template-flood.ts'

// Everything the guard remembers about one client's use of one model, and
// how it reads as signals. Classifier routes feed inputs and answers (PRADA,
// near-duplicates, confidence, coverage); LLM routes feed prompts and
// sampling parameters (logit_bias sweeps, templates, near-duplicates). The
// Durable Object keeps one of these per (key, model) and encodes it with
// state-codec.

export const PROJECTION_DIMENSIONS = 32
const MIN_ANSWERS_FOR_CONFIDENCE = 50
const MIN_ANSWERS_FOR_COVERAGE = 100

export type ModelSignals = {
  kind: 'classifier' | 'llm'
  // Fixed by the first well-formed input; inputs of another size are not fed
  // to PRADA (the model path answers them 400 anyway).
  inputDimensions: number | null
  classes: number
  prada: PradaState | null
  hashing: QueryHashingState
  confidence: ConfidenceState
  logitBias: LogitBiasState | null
  templates: TemplateState | null
}

export type SignalOptions = {
  prada: PradaOptions
  hashing: QueryHashingOptions
  confidence: ConfidenceOptions
  projectionSeed: number
}

export function signalOptions(policy: GuardPolicy, projectionSeed: number): SignalOptions {
  return {
    prada: { ...DEFAULT_PRADA_OPTIONS, dimensions: PROJECTION_DIMENSIONS, delta: policy.thresholds.prada_delta },
    hashing: DEFAULT_QUERY_HASHING_OPTIONS,
    confidence: { tau: policy.thresholds.low_confidence_tau, baseline: policy.thresholds.low_confidence_baseline, maxClasses: 100 },
    projectionSeed,
  }
}

export function createModelSignals(kind: ModelSignals['kind'], options: SignalOptions): ModelSignals {
  return {
    kind,
    inputDimensions: null,
    classes: 0,
    prada: null,
    hashing: createQueryHashingState(options.hashing),
    confidence: createConfidenceState(options.confidence),
    logitBias: kind === 'llm' ? createLogitBiasState() : null,
    templates: kind === 'llm' ? createTemplateState(DEFAULT_TEMPLATE_OPTIONS) : null,
  }
}

// A classifier instance as a flat list of finite numbers, or null when it is
// not one (nested arrays are flattened row-major, as the model sees them).
export function flattenInstance(instance: unknown, limit = 1 << 20): Float64Array | null {
  const out: number[] = []
  const walk = (value: unknown): boolean => {
    if (typeof value === 'number') {
      if (!Number.isFinite(value) || out.length >= limit) return false
      out.push(value)
      return true
    }
    return Array.isArray(value) && value.every(walk)
  }
  if (!walk(instance) || out.length === 0) return null
  return Float64Array.from(out)
}

export type ClassifierObservation = {
  input: ArrayLike<number>
  // The model's full answer before masking (what the client could have
  // learned), or only its label when the model gives none.
  probabilities?: ArrayLike<number>
  label?: number
}

export function observeClassifierQuery(signals: ModelSignals, options: SignalOptions, observation: ClassifierObservation): void {
  const { input, probabilities } = observation
  let label = observation.label ?? 0
  if (probabilities && probabilities.length > 0) {
    label = observeAnswer(signals.confidence, options.confidence, probabilities)
    signals.classes = Math.max(signals.classes, probabilities.length)
  } else {
    observeLabel(signals.confidence, options.confidence, label)
    signals.classes = Math.max(signals.classes, label + 1)
  }
  observeQueryHashes(signals.hashing, options.hashing, fingerprint(input, options.hashing))
  if (signals.inputDimensions === null) signals.inputDimensions = input.length
  if (input.length !== signals.inputDimensions) return
  const projection = createRandomProjection({ inputDimensions: input.length, outputDimensions: options.prada.dimensions, seed: options.projectionSeed })
  signals.prada ??= createPradaState(options.prada)
  observePrada(signals.prada, options.prada, projection.project(input), label)
}

export type LlmObservation = { prompt: string; logitBias?: Record<string, number>; logprobs?: boolean }

export function observeLlmRequest(signals: ModelSignals, options: SignalOptions, observation: LlmObservation): void {
  signals.logitBias ??= createLogitBiasState()
  signals.templates ??= createTemplateState(DEFAULT_TEMPLATE_OPTIONS)
  observeLogitBias(signals.logitBias, DEFAULT_LOGIT_BIAS_OPTIONS, observation.logitBias, observation.logprobs ?? false)
  observePrompt(signals.templates, DEFAULT_TEMPLATE_OPTIONS, observation.prompt)
  observeQueryHashes(signals.hashing, options.hashing, fingerprintText(observation.prompt, options.hashing))
}

export function readSignals(signals: ModelSignals, options: SignalOptions, policy: GuardPolicy): SignalReading[] {
  const t = policy.thresholds
  const readings: SignalReading[] = []
  const prada = signals.prada
  if (prada?.lastW != null) {
    readings.push({
      signal: 'prada',
      value: prada.lastW,
      threshold: t.prada_delta,
      strength: strengthBelow(prada.lastW, t.prada_delta, 0.05),
      detail: `Shapiro–Wilk W = ${prada.lastW.toFixed(3)} (p = ${prada.lastP!.toExponential(2)}) over the last ${Math.min(prada.distanceCount, options.prada.window)} minimum distances`,
    })
  }
  const matches = recentMatches(signals.hashing)
  readings.push({
    signal: 'near_duplicates',
    value: matches,
    threshold: t.near_duplicate_matches,
    strength: strengthAbove(matches, t.near_duplicate_matches, t.near_duplicate_matches),
    detail: `${matches} of the last ${Math.min(signals.hashing.queries, options.hashing.history)} queries nearly repeat an earlier one`,
  })
  if (signals.confidence.answers >= MIN_ANSWERS_FOR_CONFIDENCE) {
    const z = lowConfidenceZ(signals.confidence, options.confidence)
    const share = signals.confidence.lowConfidence / signals.confidence.answers
    // Significant (z ≥ 4) is not enough over thousands of answers, where a
    // baseline a little off makes any client significant: the share must
    // also be well above the baseline (half strength at twice it, full at
    // five times).
    const ratio = share / options.confidence.baseline
    readings.push({
      signal: 'low_confidence',
      value: ratio,
      threshold: 2,
      strength: z >= 4 ? strengthAbove(ratio, 2, 3) : 0,
      detail: `${(share * 100).toFixed(1)}% of answers under τ = ${options.confidence.tau} against a baseline of ${(options.confidence.baseline * 100).toFixed(1)}% (z = ${z.toFixed(1)})`,
    })
  }
  let answers = 0
  for (const count of signals.confidence.classCounts) answers += count
  if (signals.kind === 'classifier' && answers >= MIN_ANSWERS_FOR_COVERAGE && signals.classes >= 2) {
    const entropy = classCoverageEntropy(signals.confidence, signals.classes)
    readings.push({
      signal: 'class_coverage',
      value: entropy,
      threshold: t.coverage_entropy,
      strength: strengthBelow(entropy, t.coverage_entropy, t.coverage_entropy),
      detail: `class-coverage entropy ${entropy.toFixed(2)} of 1 over ${answers} answers`,
    })
  }
  if (signals.logitBias && signals.logitBias.biasedRequests > 0) {
    const distinct = signals.logitBias.tokenIds.length
    // Asking for logprobs with the bias is what reads the logits out.
    const reading = signals.logitBias.biasedWithLogprobs > 0 ? distinct * 2 : distinct
    readings.push({
      signal: 'logit_bias_sweep',
      value: distinct,
      threshold: t.logit_bias_distinct_tokens,
      strength: strengthAbove(reading, t.logit_bias_distinct_tokens, t.logit_bias_distinct_tokens),
      detail: `${distinct} distinct token ids biased over ${signals.logitBias.biasedRequests} requests, ${signals.logitBias.biasedWithLogprobs} of them with logprobs`,
    })
  }
  if (signals.templates) {
    const share = dominantTemplateShare(signals.templates, DEFAULT_TEMPLATE_OPTIONS)
    readings.push({
      signal: 'templated_prompts',
      value: share,
      threshold: t.template_share,
      strength: strengthAbove(share, t.template_share, Math.max(1 - t.template_share, 0.05)),
      detail: `${(share * 100).toFixed(0)}% of the last prompts share one template`,
    })
  }
  return readings
}

export function readVolume(volume: import('./volume-anomaly.ts').VolumeState, policy: GuardPolicy, z: number): SignalReading {
  return {
    signal: 'volume',
    value: z,
    threshold: policy.thresholds.volume_z,
    strength: strengthAbove(z, policy.thresholds.volume_z, policy.thresholds.volume_z),
    detail: `${volume.count} requests this minute against a baseline of ${volume.mean.toFixed(1)} (z = ${z.toFixed(1)})`,
  }
}
