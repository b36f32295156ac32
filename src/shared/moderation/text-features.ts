import { detectCues, type CueReport } from './cue-detector.ts'
import { hashName, hashNgrams, wordSpans } from './feature-hashing.ts'
import type { NormalizedText } from './normalize.ts'

// A long text is read in overlapping windows of words and each category takes
// its highest window, so a threat in the middle of an essay is not averaged
// away. Training reads the first window of each example.
export const WINDOW_WORDS = 64
export const WINDOW_STRIDE = 48

const MIN_NGRAMS = 32

export type FeatureWindow = { hashes: number[]; hashWeight: number }
export type TextFeatures = { windows: FeatureWindow[]; named: number[]; cues: CueReport }

export type FeatureOptions = { cues: boolean; maxWindows?: number }

const NO_CUES: CueReport = { matches: [], features: [] }

export function extractFeatures(normalized: NormalizedText, options: FeatureOptions): TextFeatures {
  const text = normalized.folded.text
  const words = wordSpans(text)
  const cues = options.cues ? detectCues(normalized) : NO_CUES
  const windows: FeatureWindow[] = []
  const limit = options.maxWindows ?? Infinity
  for (let from = 0; from < words.length && windows.length < limit; from += WINDOW_STRIDE) {
    const hashes: number[] = []
    hashNgrams(text, words, from, Math.min(words.length, from + WINDOW_WORDS), hashes)
    // n-gram counts are scaled to unit length so a long window does not
    // outvote a short one by its length alone; a text of a word or two is
    // scaled as if it were a short sentence, or one word would weigh as much
    // as a whole sentence.
    windows.push({ hashes, hashWeight: 1 / Math.sqrt(Math.max(hashes.length, MIN_NGRAMS)) })
    if (from + WINDOW_WORDS >= words.length) break
  }
  return { windows, named: cues.features.map(hashName), cues }
}
