import { eld } from 'eld/extrasmall'

// Language identification (eld's smallest n-gram set) over the first
// characters of a text: enough to tell languages apart, and a fixed cost
// however long the text is.
export type LanguageGuess = { code: string; reliable: boolean }

export const LANGUAGE_WINDOW = 80

// Words that are English and nothing else among the languages the engine
// meets ("a", "in", "die", "was", "will", "do", "to" are left out: other
// languages use them too). Plain ASCII text where they make a sixth of the
// words is English without asking eld, which saves most texts its cost.
const ENGLISH_WORDS = new Set(
  ('the and you that this with have not what your they she from just about there would when like it of are my but how we if can be at ' +
    'all his her our their them been were which an im dont its should could than then some very into over after before because who why ' +
    'where has had does did get got going want know think out up please thanks thank').split(' '),
)
const ASCII = /^[\x00-\x7f]*$/

function looksEnglish(sample: string): boolean {
  if (!ASCII.test(sample)) return false
  let words = 0
  let hits = 0
  for (const match of sample.toLowerCase().matchAll(/[a-z]+(?:'[a-z]+)?/g)) {
    words++
    if (ENGLISH_WORDS.has(match[0].replace("'", ''))) hits++
  }
  return hits >= 2 && hits * 6 >= words
}

export function identifyLanguage(canonical: string, window = LANGUAGE_WINDOW): LanguageGuess {
  const sample = canonical.length > window ? canonical.slice(0, window) : canonical
  if (!/\p{L}/u.test(sample)) return { code: 'und', reliable: false }
  if (looksEnglish(sample)) return { code: 'en', reliable: true }
  const result = eld.detect(sample)
  return { code: result.language || 'und', reliable: result.language !== '' && result.isReliable() }
}

// The lexicons are English; in a text reliably in another language, English
// words such as "die" (German "the") or "negro" (Spanish "black") are not
// cues, and the learned model's character n-grams, trained on ten languages,
// answer alone.
export function cuesApply(language: LanguageGuess): boolean {
  return !language.reliable || language.code === 'en'
}
