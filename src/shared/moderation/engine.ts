import { OMNI_CATEGORIES, zeroScores, type CategoryScores } from './categories.ts'
import { cuesApply, identifyLanguage, type LanguageGuess } from './language.ts'
import { loadLinearModel, MODEL_HEADS, type LinearModel, type ModelWeightsFile } from './linear-model.ts'
import { MODERATION_WEIGHTS } from './moderation-weights.ts'
import { normalizeText, originalRange, type MappedText, type NormalizedText } from './normalize.ts'
import { findPii, type PiiFinding, type PiiOptions } from './pii.ts'
import { detectCues, NO_CUES } from './cue-detector.ts'
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

export type AnalyzeOptions = {
  allowlist?: PhraseMatcher<string>
  blocklist?: PhraseMatcher<string>
  // 'always' (the default) identifies every text's language, as
  // /v1/moderations reports it. 'when-cues-match' identifies it only when the
  // cue lexicons matched something, the one case where it changes a score or
  // a decision (it decides whether the cues count); otherwise the analysis
  // says 'und'. For inline checks (the proxy) that only act on the decision.
  language?: 'always' | 'when-cues-match'
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
  const logits = new Float64Array(MODEL_HEADS.length)
  const best = new Float64Array(MODEL_HEADS.length)

  const spanOf = (normalized: NormalizedText, mapped: MappedText, start: number, end: number): SpanMatch => {
    const [from, to] = originalRange(mapped, start, end)
    return { start: from, end: to, text: normalized.original.slice(from, to) }
  }

  return {
    version: model.version,
    model,
    analyze(text, analyzeOptions = {}) {
      const normalized = normalizeText(text)
      const allowed = analyzeOptions.allowlist?.findAll(normalized.folded.text) ?? []
      const folded = blank(normalized.folded, allowed)
      const view: NormalizedText = { ...normalized, folded }
      // What text-features.ts extracts for training, computed the same way
      // but streamed into the model (a test holds the two paths equal).
      // Lazily, the cues come first; nothing matched, the language is moot.
      const found = analyzeOptions.language === 'when-cues-match' ? detectCues(view) : null
      const language =
        found && found.matches.length === 0 && found.features.length === 0 ? NOT_IDENTIFIED : identifyLanguage(normalized.canonical.text, options.languageWindow)
      const cues = cuesApply(language) ? (found ?? detectCues(view)) : NO_CUES
      const named = cues.features.map(hashName)
      const words = wordSpans(folded.text)
      const windows = windowRanges(words.count)

      const scores = zeroScores()
      let injection = 0
      if (windows.length > 0) {
        best.fill(-Infinity)
        for (const [from, to] of windows) {
          model.streamLogits((emit) => forEachNgram(folded.text, words, from, to, emit), ngramWeight, named, logits)
          for (let h = 0; h < logits.length; h++) if (logits[h]! > best[h]!) best[h] = logits[h]!
        }
        OMNI_CATEGORIES.forEach((category, h) => (scores[category] = model.calibrate(h, best[h]!)))
        injection = model.calibrate(OMNI_CATEGORIES.length, best[OMNI_CATEGORIES.length]!)
      }

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
