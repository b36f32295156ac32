import { OMNI_CATEGORIES, zeroScores, type CategoryScores } from './categories.ts'
import { cuesApply, identifyLanguage, type LanguageGuess } from './language.ts'
import { loadLinearModel, MODEL_HEADS, type LinearModel, type ModelHead, type ModelWeightsFile } from './linear-model.ts'
import { MODERATION_WEIGHTS } from './moderation-weights.ts'
import { normalizeText, originalRange, type MappedText, type NormalizedText } from './normalize.ts'
import { findPii, type PiiFinding, type PiiOptions } from './pii.ts'
import { detectCues, NO_CUES, type CueReport } from './cue-detector.ts'
import { forEachNgram, hashName, wordSpans } from './feature-hashing.ts'
import { ngramWeight, windowRanges } from './text-features.ts'
import type { PhraseMatcher } from './aho-corasick.ts'

export type EngineOptions = { weights?: ModelWeightsFile; languageWindow?: number } & PiiOptions

export type SpanMatch = { start: number; end: number; text: string }
export type CueSpan = SpanMatch & { cue: string; negated: boolean; quoted: boolean }
export type ListMatch = SpanMatch & { term: string }

export type ModerationAnalysis = {
  scores: CategoryScores
  injection: number
  language: LanguageGuess
  cues: CueSpan[]
  pii: (PiiFinding & { text: string })[]
  blocklist: ListMatch[]
  allowlist: ListMatch[]
}

// A threshold per model head: a decision changes only where a score reaches one.
export type HeadThresholds = Readonly<Record<ModelHead, number>>

export type AnalyzeOptions = {
  allowlist?: PhraseMatcher<string>
  blocklist?: PhraseMatcher<string>
  // 'always' (the default) identifies every text's language, as
  // /v1/moderations reports it. Given the thresholds a caller decides by,
  // only where the answer could change a decision or a reported score: when
  // the cue lexicons matched (the language decides whether they count) and
  // some score reaches its threshold with the cues or without them.
  // Otherwise the analysis says 'und' and keeps the cues, as an unreliable
  // identification would. For inline checks (the proxy), which act on the
  // decision and record only the scores that reached a threshold.
  language?: 'always' | { decisiveAt: HeadThresholds }
}

const NOT_IDENTIFIED: LanguageGuess = { code: 'und', reliable: false }

function blank(folded: MappedText, spans: readonly { start: number; end: number }[]): MappedText {
  if (spans.length === 0) return folded
  const chars = folded.text.split('')
  for (const { start, end } of spans) for (let i = start; i < end; i++) chars[i] = ' '
  return { ...folded, text: chars.join('') }
}

export type ModerationEngine = {
  readonly version: string
  readonly model: LinearModel
  analyze(text: string, options?: AnalyzeOptions): ModerationAnalysis
}

export function createModerationEngine(options: EngineOptions = {}): ModerationEngine {
  const model = loadLinearModel(options.weights ?? MODERATION_WEIGHTS)
  const heads = MODEL_HEADS.length
  const logits = new Float64Array(heads)
  const bareLogits = new Float64Array(heads)
  const best = new Float64Array(heads)
  const bestBare = new Float64Array(heads)

  const spanOf = (normalized: NormalizedText, mapped: MappedText, start: number, end: number): SpanMatch => {
    const [from, to] = originalRange(mapped, start, end)
    return { start: from, end: to, text: normalized.original.slice(from, to) }
  }

  // The best window's logit per head into `best`, and with `withBare` the
  // same without the cue features into `bestBare`, in one pass. False when
  // the text has no words to score.
  const scoreWindows = (folded: MappedText, named: readonly number[], withBare: boolean): boolean => {
    const words = wordSpans(folded.text)
    const windows = windowRanges(words.count)
    if (windows.length === 0) return false
    best.fill(-Infinity)
    bestBare.fill(-Infinity)
    for (const [from, to] of windows) {
      model.streamLogits((emit) => forEachNgram(folded.text, words, from, to, emit), ngramWeight, named, logits, withBare ? bareLogits : undefined)
      for (let h = 0; h < heads; h++) if (logits[h]! > best[h]!) best[h] = logits[h]!
      if (withBare) for (let h = 0; h < heads; h++) if (bareLogits[h]! > bestBare[h]!) bestBare[h] = bareLogits[h]!
    }
    return true
  }
  const calibrated = (logitsOf: Float64Array | null) => {
    const scores = zeroScores()
    if (!logitsOf) return { scores, injection: 0 }
    OMNI_CATEGORIES.forEach((category, h) => (scores[category] = model.calibrate(h, logitsOf[h]!)))
    return { scores, injection: model.calibrate(OMNI_CATEGORIES.length, logitsOf[OMNI_CATEGORIES.length]!) }
  }
  const reaches = ({ scores, injection }: ReturnType<typeof calibrated>, thresholds: HeadThresholds) =>
    injection >= thresholds.injection || OMNI_CATEGORIES.some((category) => scores[category] >= thresholds[category])

  return {
    version: model.version,
    model,
    analyze(text, analyzeOptions = {}) {
      const normalized = normalizeText(text)
      const allowed = analyzeOptions.allowlist?.findAll(normalized.folded.text) ?? []
      const folded = blank(normalized.folded, allowed)
      const view: NormalizedText = { ...normalized, folded }
      const identify = () => identifyLanguage(normalized.canonical.text, options.languageWindow)
      // What text-features.ts extracts for training, computed the same way
      // but streamed into the model (a test holds the two paths equal).
      let language: LanguageGuess
      let cues: CueReport
      let scored: ReturnType<typeof calibrated>
      const lazy = typeof analyzeOptions.language === 'object' ? analyzeOptions.language.decisiveAt : null
      if (lazy) {
        // The cues come first; the language is asked only if it can matter.
        const found = detectCues(view)
        const matched = found.matches.length > 0 || found.features.length > 0
        const any = scoreWindows(folded, found.features.map(hashName), matched)
        scored = calibrated(any ? best : null)
        if (!matched) {
          language = NOT_IDENTIFIED
          cues = found
        } else {
          const bare = calibrated(any ? bestBare : null)
          language = reaches(scored, lazy) || reaches(bare, lazy) ? identify() : NOT_IDENTIFIED
          cues = cuesApply(language) ? found : NO_CUES
          if (cues !== found) scored = bare
        }
      } else {
        language = identify()
        cues = cuesApply(language) ? detectCues(view) : NO_CUES
        scored = calibrated(scoreWindows(folded, cues.features.map(hashName), false) ? best : null)
      }
      const { scores, injection } = scored

      const pii = findPii(normalized.canonical.text, options).map((finding) => {
        const span = spanOf(normalized, normalized.canonical, finding.start, finding.end)
        return { ...finding, ...span }
      })
      const cueSpans = cues.matches
        .filter((m) => m.end > m.start)
        .map((m) => ({ cue: m.tag, negated: m.negated, quoted: m.quoted, ...spanOf(normalized, folded, m.start, m.end) }))
      const listSpans = (matches: { start: number; end: number; value: string }[]) =>
        matches.map((m) => ({ term: m.value, ...spanOf(normalized, folded, m.start, m.end) }))
      return {
        scores,
        injection,
        language,
        cues: cueSpans,
        pii,
        blocklist: listSpans(analyzeOptions.blocklist?.findAll(folded.text) ?? []),
        allowlist: listSpans(allowed),
      }
    },
  }
}
