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

const NO_CUES: CueReport = { matches: [], features: [] }

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

// For each position of the folded text, how many words come before it.
function wordPositions(text: string): Int32Array {
  const positions = new Int32Array(text.length + 1)
  let spaces = 0
  for (let i = 0; i < text.length; i++) {
    positions[i] = spaces
    if (text.charCodeAt(i) === 32) spaces++
  }
  positions[text.length] = spaces
  return positions
}

// Finds every cue in the folded text and turns them into model features:
// each tag, the tag when negated or quoted, each pair of tags present and
// each tag beside each context the text is in.
export function detectCues(normalized: NormalizedText): CueReport {
  const { folded } = normalized
  const text = folded.text
  const raw = cueMatcher().findAll(text)
  if (raw.length === 0 && !UNDER_18.test(text)) return NO_CUES
  const positions = wordPositions(text)
  const wordsBefore = (_: string, index: number) => positions[index]!
  const covers = (outer: PhraseMatch<Cue>, inner: PhraseMatch<Cue>) => outer.start <= inner.start && inner.end <= outer.end
  const innocent = raw.filter((m) => m.value.kind === 'innocent')
  const idle = raw.filter((m) => m.value.kind === 'cue' && m.value.tag === 'idle')
  const photos = raw.filter((m) => m.value.kind === 'cue' && m.value.tag === 'photo').map((m) => ({ ...m, word: wordsBefore(text, m.start) }))
  const negations = raw
    .filter((m) => m.value.kind === 'cue' && m.value.tag === 'negation')
    .map((m) => ({ word: wordsBefore(text, m.start), end: folded.ends[m.end - 1]! }))
  const quotes = QUOTE.test(normalized.original) ? quotedRanges(normalized.original) : []

  // "kill the process" is covered by an idle phrase; in "shoot a photo" and
  // "a flu shot" the photo word covers or follows within three words.
  const isOtherSense = (match: PhraseMatch<Cue>, position: number) =>
    idle.some((i) => covers(i, match)) || photos.some((p) => covers(p, match) || (p.start >= match.end && p.word - position <= 3))

  const matches: CueMatch[] = []
  for (const match of raw) {
    const value = match.value
    if (value.kind === 'innocent') continue
    if (value.kind === 'profanity' && innocent.some((i) => covers(i, match))) continue
    const tag = value.kind === 'cue' ? value.tag : 'profanity'
    const position = wordsBefore(text, match.start)
    if (SENSE_TAGS.has(tag) && isOtherSense(match, position)) continue
    const from = folded.starts[match.start]!
    // A negation reaches three words ahead, within its clause.
    const negated =
      !CONTEXT_TAGS.has(tag) &&
      negations.some((n) => position - n.word >= 1 && position - n.word <= 3 && !CLAUSE_BREAK.test(normalized.original.slice(n.end, from)))
    const quoted = quotes.some(([a, b]) => a <= from && from < b)
    matches.push({ tag, start: match.start, end: match.end, negated, quoted })
    if (value.kind === 'profanity') matches.push({ tag: `p:${value.word}`, start: match.start, end: match.end, negated, quoted })
  }
  if (UNDER_18.test(text)) matches.push({ tag: 'minor', start: 0, end: 0, negated: false, quoted: false })

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
