import type { Phrase } from './aho-corasick.ts'
import { foldPhrase } from './normalize.ts'
import { INNOCENT_TERMS, PROFANITY_TERMS } from './profanity-terms.ts'

// The `obscenity` package's English lexicon, exported to profanity-terms.ts,
// as phrases for the one-pass cue matcher. An innocent word that contains a
// profane spelling ("cockpit", "Scunthorpe") cancels the match inside it.
export type ProfanityCue = { kind: 'profanity'; word: string } | { kind: 'innocent' }

export function profanityPhrases(): Phrase<ProfanityCue>[] {
  const phrases: Phrase<ProfanityCue>[] = PROFANITY_TERMS.map(([word, spelling, boundaryStart, boundaryEnd]) => ({
    text: foldPhrase(spelling),
    value: { kind: 'profanity', word },
    boundaryStart,
    boundaryEnd,
  }))
  for (const innocent of INNOCENT_TERMS) phrases.push({ text: foldPhrase(innocent), value: { kind: 'innocent' }, boundaryStart: false, boundaryEnd: false })
  return phrases
}
