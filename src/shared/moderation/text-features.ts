import { detectCues, type CueReport } from './cue-detector.ts'
import { hashName, hashNgrams, wordSpans } from './feature-hashing.ts'
import type { NormalizedText } from './normalize.ts'

// A long text is read in overlapping windows of words and each category takes
// its highest window, so a threat in the middle of an essay is not averaged
// away. Training reads the first window of each example.
export const WINDOW_WORDS = 64
export const WINDOW_STRIDE = 48

const MIN_NGRAMS = 32

// n-gram counts are scaled to unit length so a long window does not outvote a
// short one by its length alone; a text of a word or two is scaled as if it
// were a short sentence, or one word would weigh as much as a whole sentence.
export function ngramWeight(count: number): number {
  return 1 / Math.sqrt(Math.max(count, MIN_NGRAMS))
}

// The word ranges [from, to) of each window of a text of `words` words.
export function windowRanges(words: number, maxWindows = Infinity): [number, number][] {
  const ranges: [number, number][] = []
  for (let from = 0; from < words && ranges.length < maxWindows; from += WINDOW_STRIDE) {
    ranges.push([from, Math.min(words, from + WINDOW_WORDS)])
    if (from + WINDOW_WORDS >= words) break
  }
  return ranges
}

export type FeatureWindow = { hashes: number[]; hashWeight: number }
export type TextFeatures = { windows: FeatureWindow[]; named: number[]; cues: CueReport }

export type FeatureOptions = { cues: boolean; maxWindows?: number }

const NO_CUES: CueReport = { matches: [], features: [] }

export function extractFeatures(normalized: NormalizedText, options: FeatureOptions): TextFeatures {
  const text = normalized.folded.text
  const words = wordSpans(text)
  const cues = options.cues ? detectCues(normalized) : NO_CUES
  const windows = windowRanges(words.count, options.maxWindows).map(([from, to]): FeatureWindow => {
    const hashes: number[] = []
    hashNgrams(text, words, from, to, hashes)
    return { hashes, hashWeight: ngramWeight(hashes.length) }
  })
  return { windows, named: cues.features.map(hashName), cues }
}
