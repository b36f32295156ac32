import { cuesApply, identifyLanguage } from '../../src/shared/moderation/language.ts'
import { normalizeText } from '../../src/shared/moderation/normalize.ts'
import { extractFeatures, type TextFeatures } from '../../src/shared/moderation/text-features.ts'

// Features exactly as the engine computes them, for training and evaluation.
export function featurize(text: string, maxWindows?: number): TextFeatures {
  const normalized = normalizeText(text)
  const language = identifyLanguage(normalized.canonical.text)
  return extractFeatures(normalized, { cues: cuesApply(language), ...(maxWindows ? { maxWindows } : {}) })
}
