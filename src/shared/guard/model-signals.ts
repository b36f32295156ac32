import { classCoverageEntropy, createConfidenceState, lowConfidenceZ, observeAnswer, observeLabel, type ConfidenceOptions, type ConfidenceState } from './confidence-signals.ts'
import type { GuardPolicy } from './guard-policy.ts'
import { createLogitBiasState, DEFAULT_LOGIT_BIAS_OPTIONS, observeLogitBias, type LogitBiasState } from './logit-bias-sweep.ts'
import { createPradaState, DEFAULT_PRADA_OPTIONS, observePrada, type PradaOptions, type PradaState } from './prada.ts'
import { createQueryHashingState, DEFAULT_QUERY_HASHING_OPTIONS, fingerprint, fingerprintFoldedText, foldForHashing, observeQueryHashes, recentMatches, type QueryHashingOptions, type QueryHashingState } from './query-hashing.ts'
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
const LOW_CONFIDENCE_MIN_Z = 6

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
  // Both detectors read the prompt in NFKC and lower case: folded once.
  const folded = foldForHashing(observation.prompt)
  observePrompt(signals.templates, DEFAULT_TEMPLATE_OPTIONS, folded)
  observeQueryHashes(signals.hashing, options.hashing, fingerprintFoldedText(folded, options.hashing))
}

// Detail text is written only for signals that count (strength > 0): this
// runs on every answer, and formatting numbers is most of its cost.
function reading(signal: SignalReading['signal'], value: number, threshold: number, strength: number, detail: () => string): SignalReading {
  return { signal, value, threshold, strength, detail: strength > 0 ? detail() : '' }
}

export function readSignals(signals: ModelSignals, options: SignalOptions, policy: GuardPolicy): SignalReading[] {
  const t = policy.thresholds
  const readings: SignalReading[] = []
  const prada = signals.prada
  const w = prada?.lastW ?? null
  if (prada && w !== null) {
    readings.push(reading('prada', w, t.prada_delta, strengthBelow(w, t.prada_delta, 0.05), () =>
      `Shapiro–Wilk W = ${w.toFixed(3)} (p = ${prada.lastP!.toExponential(2)}) over the last ${Math.min(prada.distanceCount, options.prada.window)} minimum distances`))
  }
  const matches = recentMatches(signals.hashing)
  readings.push(reading('near_duplicates', matches, t.near_duplicate_matches, strengthAbove(matches, t.near_duplicate_matches, t.near_duplicate_matches), () =>
    `${matches} of the last ${Math.min(signals.hashing.queries, options.hashing.history)} queries nearly repeat an earlier one`))
  if (signals.confidence.answers >= MIN_ANSWERS_FOR_CONFIDENCE) {
    const z = lowConfidenceZ(signals.confidence, options.confidence)
    const share = signals.confidence.lowConfidence / signals.confidence.answers
    // Two gates: significance (z ≥ 6, since the test reruns after every
    // answer and a benign client's first few dozen answers fluctuate), and
    // size, since over thousands of answers a baseline a little off makes
    // any client significant: the share must be well above the baseline
    // (half strength at twice it, full at five times).
    const ratio = share / options.confidence.baseline
    readings.push(reading('low_confidence', ratio, 2, z >= LOW_CONFIDENCE_MIN_Z ? strengthAbove(ratio, 2, 3) : 0, () =>
      `${(share * 100).toFixed(1)}% of answers under τ = ${options.confidence.tau} against a baseline of ${(options.confidence.baseline * 100).toFixed(1)}% (z = ${z.toFixed(1)})`))
  }
  let answers = 0
  for (const count of signals.confidence.classCounts) answers += count
  if (signals.kind === 'classifier' && answers >= MIN_ANSWERS_FOR_COVERAGE && signals.classes >= 2) {
    const entropy = classCoverageEntropy(signals.confidence, signals.classes)
    readings.push(reading('class_coverage', entropy, t.coverage_entropy, strengthBelow(entropy, t.coverage_entropy, t.coverage_entropy), () =>
      `class-coverage entropy ${entropy.toFixed(2)} of 1 over ${answers} answers`))
  }
  const bias = signals.logitBias
  if (bias && bias.biasedRequests > 0) {
    const distinct = bias.tokenIds.length
    // Asking for logprobs with the bias is what reads the logits out.
    const measure = bias.biasedWithLogprobs > 0 ? distinct * 2 : distinct
    readings.push(reading('logit_bias_sweep', distinct, t.logit_bias_distinct_tokens, strengthAbove(measure, t.logit_bias_distinct_tokens, t.logit_bias_distinct_tokens), () =>
      `${distinct} distinct token ids biased over ${bias.biasedRequests} requests, ${bias.biasedWithLogprobs} of them with logprobs`))
  }
  if (signals.templates) {
    const share = dominantTemplateShare(signals.templates, DEFAULT_TEMPLATE_OPTIONS)
    readings.push(reading('templated_prompts', share, t.template_share, strengthAbove(share, t.template_share, Math.max(1 - t.template_share, 0.05)), () =>
      `${(share * 100).toFixed(0)}% of the last prompts share one template`))
  }
  return readings
}

export function readVolume(volume: import('./volume-anomaly.ts').VolumeState, policy: GuardPolicy, z: number): SignalReading {
  const threshold = policy.thresholds.volume_z
  return reading('volume', z, threshold, strengthAbove(z, threshold, threshold), () =>
    `${volume.count} requests this minute against a baseline of ${volume.mean.toFixed(1)} (z = ${z.toFixed(1)})`)
}
