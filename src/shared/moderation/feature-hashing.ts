// Hashed word and character n-grams of folded text: the learned model's view
// of a text. FNV-1a over UTF-16 units, each kind of n-gram with its own seed,
// so "ab" as a word and "ab" as characters land in different buckets.

const FNV_PRIME = 0x01000193
const WORD_SEED = 0x811c9dc5
const CHAR_SEED = 0x6b43a9b5
const CUE_SEED = 0x2f6b1d3a

function hashRange(seed: number, text: string, from: number, to: number): number {
  let h = seed
  for (let i = from; i < to; i++) h = Math.imul(h ^ text.charCodeAt(i), FNV_PRIME)
  return h >>> 0
}

function hashPair(a: number, b: number): number {
  return Math.imul(a ^ Math.imul(b, 0x9e3779b1), FNV_PRIME) >>> 0
}

export function hashName(name: string): number {
  return hashRange(CUE_SEED, name, 0, name.length)
}

// The words of folded text as [from, to) pairs, flat: word w is
// spans[2w] to spans[2w + 1]. `count` is the number of words.
export type WordSpans = { spans: Int32Array; count: number }

export function wordSpans(folded: string): WordSpans {
  const spans = new Int32Array(folded.length + 2)
  let count = 0
  let from = 0
  for (let i = 0; i <= folded.length; i++) {
    if (i === folded.length || folded.charCodeAt(i) === 32) {
      if (i > from) {
        spans[count * 2] = from
        spans[count * 2 + 1] = i
        count++
      }
      from = i + 1
    }
  }
  return { spans, count }
}

// Appends the hashes of the n-grams of words[from, to) to `out`: words,
// word pairs, and character 4-grams of each word with its edges marked
// (2- to 4-grams for words outside ASCII, which covers scripts written without
// spaces and richer morphology). Every n-gram is a random read of the weight
// table, which is most of the engine's time, so ASCII words get one size.
export function hashNgrams(folded: string, words: WordSpans, from: number, to: number, out: number[]): void {
  forEachNgram(folded, words, from, to, (hash) => out.push(hash))
}

// The same n-grams handed one by one to `emit`, with no array in between
// (the engine's path); returns how many there were.
export function forEachNgram(folded: string, words: WordSpans, from: number, to: number, emit: (hash: number) => void): number {
  let previous = 0
  let count = 0
  for (let w = from; w < to; w++) {
    const start = words.spans[w * 2]!
    const end = words.spans[w * 2 + 1]!
    const word = hashRange(WORD_SEED, folded, start, end)
    emit(word)
    count++
    if (w > from) {
      emit(hashPair(previous, word))
      count++
    }
    previous = word
    // The word with a space on either side: " kil " → " ki", "kil", "il ".
    const lo = Math.max(0, start - 1)
    const hi = Math.min(folded.length, end + 1)
    const padStart = start === 0 ? 1 : 0
    const ascii = isAscii(folded, start, end)
    for (let n = ascii ? 4 : 2; n <= 4; n++) {
      for (let i = lo - padStart; i + n <= hi + (end === folded.length ? 1 : 0); i++) {
        emit(hashPadded(folded, i, i + n, n))
        count++
      }
    }
  }
  return count
}

function isAscii(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (text.charCodeAt(i) > 127) return false
  return true
}

// A character n-gram where positions outside the text read as spaces.
function hashPadded(text: string, from: number, to: number, n: number): number {
  let h = CHAR_SEED ^ n
  for (let i = from; i < to; i++) h = Math.imul(h ^ (i < 0 || i >= text.length ? 32 : text.charCodeAt(i)), FNV_PRIME)
  return h >>> 0
}
