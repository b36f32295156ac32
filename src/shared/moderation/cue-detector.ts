import { createPhraseMatcher, type PhraseMatch } from './aho-corasick.ts'
import { CUES, INJECTION_CUES } from './lexicon.ts'
import { foldPhrase, type NormalizedText } from './normalize.ts'
import { profanityPhrases, type ProfanityCue } from './profanity.ts'

type Cue = { kind: 'cue'; tag: string } | ProfanityCue

// Tags that colour the whole text rather than name something harmful.
const CONTEXT_TAGS = new Set(['negation', 'help', 'medical', 'technical', 'fiction', 'counter', 'photo', 'idle'])
// Tags whose match is a different, harmless sense when an `idle` or `photo`
// phrase covers it ("kill the process", "shoot a photo", "flu shot").
const SENSE_TAGS = new Set(['kill', 'hurt', 'weapon', 'weapon_make', 'sexual', 'minor', 'drug', 'self_harm', 'gore', 'profanity'])
const CLAUSE_BREAK = /[,.;:!?"“”()]/
const UNDER_18 = /(?:^| )(?:[1-9]|1[0-7]) ?(?:year old|years old|yo|yr old|yrs old)(?: |$)/

export type CueMatch = { tag: string; start: number; end: number; negated: boolean; quoted: boolean }
export type CueReport = { matches: CueMatch[]; features: string[] }

export const NO_CUES: CueReport = { matches: [], features: [] }

let matcher: ReturnType<typeof createPhraseMatcher<Cue>> | null = null

function cueMatcher() {
  if (matcher) return matcher
  const phrases = [...Object.entries(CUES), ['injection', INJECTION_CUES] as const].flatMap(([tag, words]) =>
    words.map((word) => ({ text: foldPhrase(word), value: { kind: 'cue', tag } as Cue })),
  )
  matcher = createPhraseMatcher<Cue>([...phrases, ...profanityPhrases()])
  return matcher
}

function quotedRanges(original: string): [number, number][] {
  const ranges: [number, number][] = []
  for (const match of original.matchAll(/["“”«»„]([^"“”«»„]{1,500})["“”«»„]/g)) ranges.push([match.index, match.index + match[0].length])
  return ranges
}

const QUOTE = /["“”«»„]/

let positionScratch = new Int32Array(1024)

// For each position of the folded text, how many words come before it.
function wordPositions(text: string): Int32Array {
  if (positionScratch.length <= text.length) positionScratch = new Int32Array(text.length * 2 + 1)
  const positions = positionScratch
  let spaces = 0
  for (let i = 0; i < text.length; i++) {
    positions[i] = spaces
    if (text.charCodeAt(i) === 32) spaces++
  }
  positions[text.length] = spaces
  return positions
}

const covers = (outer: PhraseMatch<Cue>, inner: PhraseMatch<Cue>) => outer.start <= inner.start && inner.end <= outer.end

// Finds every cue in the folded text and turns them into model features:
// each tag, the tag when negated or quoted, each pair of tags present and
// each tag beside each context the text is in.
export function detectCues(normalized: NormalizedText): CueReport {
  const { folded } = normalized
  const text = folded.text
  const raw = cueMatcher().findAll(text)
  const young = /\d/.test(text) && UNDER_18.test(text)
  if (raw.length === 0 && !young) return NO_CUES
  const positions = wordPositions(text)
  const innocent: PhraseMatch<Cue>[] = []
  const idle: PhraseMatch<Cue>[] = []
  const photos: PhraseMatch<Cue>[] = []
  const negations: { word: number; end: number }[] = []
  for (const match of raw) {
    const value = match.value
    if (value.kind === 'innocent') innocent.push(match)
    else if (value.kind === 'cue' && value.tag === 'idle') idle.push(match)
    else if (value.kind === 'cue' && value.tag === 'photo') photos.push(match)
    else if (value.kind === 'cue' && value.tag === 'negation') negations.push({ word: positions[match.start]!, end: folded.ends[match.end - 1]! })
  }
  const quotes = QUOTE.test(normalized.original) ? quotedRanges(normalized.original) : []

  // "kill the process" is covered by an idle phrase; in "shoot a photo" and
  // "a flu shot" the photo word covers or follows within three words.
  const isOtherSense = (match: PhraseMatch<Cue>, position: number) =>
    idle.some((i) => covers(i, match)) || photos.some((p) => covers(p, match) || (p.start >= match.end && positions[p.start]! - position <= 3))

  const matches: CueMatch[] = []
  for (const match of raw) {
    const value = match.value
    if (value.kind === 'innocent') continue
    if (value.kind === 'profanity' && innocent.length > 0 && innocent.some((i) => covers(i, match))) continue
    const tag = value.kind === 'cue' ? value.tag : 'profanity'
    const position = positions[match.start]!
    if (SENSE_TAGS.has(tag) && (idle.length > 0 || photos.length > 0) && isOtherSense(match, position)) continue
    const from = folded.starts[match.start]!
    // A negation reaches three words ahead, within its clause.
    const negated =
      negations.length > 0 &&
      !CONTEXT_TAGS.has(tag) &&
      negations.some((n) => position - n.word >= 1 && position - n.word <= 3 && !CLAUSE_BREAK.test(normalized.original.slice(n.end, from)))
    const quoted = quotes.length > 0 && quotes.some(([a, b]) => a <= from && from < b)
    matches.push({ tag, start: match.start, end: match.end, negated, quoted })
    if (value.kind === 'profanity') matches.push({ tag: `p:${value.word}`, start: match.start, end: match.end, negated, quoted })
  }
  if (young) matches.push({ tag: 'minor', start: 0, end: 0, negated: false, quoted: false })

  const present = new Set<string>()
  const contexts = new Set<string>()
  const features = new Set<string>()
  for (const match of matches) {
    if (CONTEXT_TAGS.has(match.tag)) contexts.add(match.tag)
    else if (match.negated) features.add(`${match.tag}:neg`)
    else present.add(match.tag)
    if (match.quoted) features.add(`${match.tag}:quote`)
  }
  const tags = [...present].filter((t) => !t.startsWith('p:')).sort()
  for (const tag of present) features.add(tag)
  for (const context of contexts) features.add(context)
  for (let i = 0; i < tags.length; i++) {
    for (let j = i + 1; j < tags.length; j++) features.add(`${tags[i]}&${tags[j]}`)
    for (const context of contexts) features.add(`${tags[i]}@${context}`)
  }
  return { matches: matches.filter((m) => !CONTEXT_TAGS.has(m.tag) && !m.tag.startsWith('p:')), features: [...features] }
}
