import { CONFUSABLES, isInvisible } from './confusables.ts'
import { leetLetter } from './leetspeak.ts'

// A transformed text that remembers, for each of its UTF-16 units, the range
// of the original text it came from, so a match maps back to what was sent.
export type MappedText = { text: string; starts: Int32Array; ends: Int32Array }

export type NormalizedText = {
  original: string
  // Invisible characters removed and NFKC applied, case kept: what PII
  // detection and language identification read.
  canonical: MappedText
  // What lexicons, lists and the learned model read: confusables mapped, then
  // NFKC, lower case, Latin diacritics dropped, leetspeak read as letters,
  // spaced letters ("k i l l") joined, repeated letters squeezed to one and
  // every run of other characters turned into one space.
  folded: MappedText
}

export function originalRange(mapped: MappedText, start: number, end: number): [number, number] {
  return [mapped.starts[start]!, mapped.ends[end - 1]!]
}

type Forms = { canonical: string; folded: string }
const formsCache = new Map<number, Forms>()
const COMBINING_DIACRITICS = /[\u0300-\u036f]/g
const WORD_CHAR = /[\p{L}\p{N}\p{M}]/u

function formsOf(cp: number): Forms {
  const cached = formsCache.get(cp)
  if (cached) return cached
  const char = String.fromCodePoint(cp)
  const lookalike = CONFUSABLES.get(cp) ?? char
  const forms = {
    canonical: char.normalize('NFKC'),
    folded: lookalike.normalize('NFKC').toLowerCase().normalize('NFD').replace(COMBINING_DIACRITICS, '').normalize('NFC'),
  }
  if (formsCache.size < 10_000) formsCache.set(cp, forms)
  return forms
}

const wordCache = new Map<number, boolean>()
function isWordCode(code: number): boolean {
  if (code < 128) return (code >= 97 && code <= 122) || (code >= 48 && code <= 57) || (code >= 65 && code <= 90)
  let word = wordCache.get(code)
  if (word === undefined) {
    word = WORD_CHAR.test(String.fromCharCode(code))
    wordCache.set(code, word)
  }
  return word
}

function isLetterCode(code: number): boolean {
  return code < 128 ? (code >= 97 && code <= 122) || (code >= 65 && code <= 90) : isWordCode(code)
}

// A growable run of UTF-16 units, each with the original range it came from.
// Its buffers are kept between texts (allocating typed arrays costs more than
// filling them); only what a result keeps is copied out.
class Builder {
  codes: Uint16Array
  starts: Int32Array
  ends: Int32Array
  length = 0
  constructor(capacity: number) {
    this.codes = new Uint16Array(Math.max(16, capacity))
    this.starts = new Int32Array(this.codes.length)
    this.ends = new Int32Array(this.codes.length)
  }
  reset(): this {
    this.length = 0
    return this
  }
  push(code: number, start: number, end: number) {
    if (this.length === this.codes.length) this.grow()
    this.codes[this.length] = code
    this.starts[this.length] = start
    this.ends[this.length] = end
    this.length++
  }
  private grow() {
    const size = this.codes.length * 2
    const codes = new Uint16Array(size)
    const starts = new Int32Array(size)
    const ends = new Int32Array(size)
    codes.set(this.codes)
    starts.set(this.starts)
    ends.set(this.ends)
    this.codes = codes
    this.starts = starts
    this.ends = ends
  }
  build(): MappedText {
    let text = ''
    for (let i = 0; i < this.length; i += 4096) {
      const chunk: number[] = []
      for (let k = i; k < Math.min(this.length, i + 4096); k++) chunk.push(this.codes[k]!)
      text += String.fromCharCode.apply(null, chunk)
    }
    return { text, starts: this.starts.slice(0, this.length), ends: this.ends.slice(0, this.length) }
  }
}

const lettersScratch = new Builder(1024)
const foldScratch = new Builder(1024)
const canonicalScratch = new Builder(1024)
let identity = new Int32Array(0)

// Offsets of a text that maps one to one onto the original.
function identityMap(text: string): MappedText {
  if (identity.length <= text.length) identity = Int32Array.from({ length: text.length * 2 + 1 }, (_, i) => i)
  return { text, starts: identity.subarray(0, text.length), ends: identity.subarray(1, text.length + 1) }
}

function pushForm(out: Builder, form: string, start: number, end: number) {
  for (let k = 0; k < form.length; k++) out.push(form.charCodeAt(k), start, end)
}

const ASCII = /^[\x00-\x7f]*$/

// Per code point: invisible characters go, everything else gets its canonical
// and folded forms (ASCII takes a fast path: it is most of any real text).
function mapCodePoints(input: string): { canonical: MappedText; letters: Builder } {
  const letters = lettersScratch.reset()
  if (ASCII.test(input)) {
    for (let i = 0; i < input.length; i++) {
      const code = input.charCodeAt(i)
      letters.push(code >= 65 && code <= 90 ? code + 32 : code, i, i + 1)
    }
    return { canonical: identityMap(input), letters }
  }
  const canonical = canonicalScratch.reset()
  for (let i = 0; i < input.length; ) {
    const cp = input.codePointAt(i)!
    const end = i + (cp > 0xffff ? 2 : 1)
    if (cp < 128) {
      canonical.push(cp, i, end)
      letters.push(cp >= 65 && cp <= 90 ? cp + 32 : cp, i, end)
    } else if (!isInvisible(cp)) {
      const forms = formsOf(cp)
      pushForm(canonical, forms.canonical, i, end)
      pushForm(letters, forms.folded, i, end)
    }
    i = end
  }
  return { canonical: canonical.build(), letters }
}

// Word tokens of the lower-cased stream as [from, to) ranges. A leetspeak
// symbol belongs to a token when it sits inside a word ("a$$", "k!ll", "$hit").
function tokenize(letters: Builder): Int32Array {
  const { codes, length } = letters
  const ranges = new Int32Array(length * 2 + 2)
  let count = 0
  let inToken = false
  for (let i = 0; i < length; i++) {
    const code = codes[i]!
    let joins = isWordCode(code)
    if (!joins && leetLetter(code) !== 0) {
      const nextIsWord = i + 1 < length && isWordCode(codes[i + 1]!)
      joins = inToken ? nextIsWord || code === 36 : nextIsWord && (code === 36 || code === 64 || code === 124)
    }
    if (joins && !inToken) ranges[count * 2] = i
    if (!joins && inToken) ranges[count++ * 2 + 1] = i
    inToken = joins
  }
  if (inToken) ranges[count++ * 2 + 1] = length
  return ranges.subarray(0, count * 2)
}

let runScratch = new Int32Array(256)

function fold(letters: Builder): MappedText {
  const { codes, starts, ends } = letters
  const tokens = tokenize(letters)
  const count = tokens.length / 2
  // "k i l l", "k.i.l.l", "f-u-c-k": three or more one-letter tokens with at
  // most two characters between each are one word. wordEnd[t] is the last
  // token of the word token t starts, or -1 when t continues a word.
  if (runScratch.length < count) runScratch = new Int32Array(count * 2)
  const wordEnd = runScratch
  for (let t = 0; t < count; ) {
    let last = t
    while (
      last + 1 < count &&
      tokens[last * 2 + 1]! - tokens[last * 2]! === 1 &&
      tokens[last * 2 + 3]! - tokens[last * 2 + 2]! === 1 &&
      tokens[last * 2 + 2]! - tokens[last * 2 + 1]! <= 2
    ) {
      last++
    }
    if (last - t < 2) last = t
    wordEnd[t] = last
    for (let k = t + 1; k <= last; k++) wordEnd[k] = -1
    t = last + 1
  }

  const out = foldScratch.reset()
  let previous = -1
  let hasLetter = false
  for (let t = 0; t < count; t++) {
    const from = tokens[t * 2]!
    const to = tokens[t * 2 + 1]!
    const last = wordEnd[t]!
    if (last >= 0) {
      if (out.length > 0) {
        const at = out.ends[out.length - 1]!
        out.push(32, at, at)
        previous = 32
      }
      // Leetspeak applies to a word with a letter in it.
      hasLetter = false
      const wordTo = tokens[last * 2 + 1]!
      for (let k = from; k < wordTo && !hasLetter; k++) hasLetter = isLetterCode(codes[k]!)
    }
    for (let k = from; k < to; k++) {
      const code = (hasLetter && leetLetter(codes[k]!)) || codes[k]!
      // Repeated letters squeeze to one ("kiiill" → "kil"); lexicons are
      // folded the same way, so "kill" matches it. Digits keep their count.
      if (code === previous && isLetterCode(code)) {
        out.ends[out.length - 1] = ends[k]!
        continue
      }
      out.push(code, starts[k]!, ends[k]!)
      previous = code
    }
  }
  return out.build()
}

export function normalizeText(input: string): NormalizedText {
  const { canonical, letters } = mapCodePoints(input)
  return { original: input, canonical, folded: fold(letters) }
}

// A phrase written for a lexicon or a tenant's list, folded like text is.
export function foldPhrase(phrase: string): string {
  return normalizeText(phrase).folded.text
}
