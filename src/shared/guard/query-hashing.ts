import { seededRandom } from './seeded-random.ts'

// Near-duplicate query detection in the manner of Blacklight (Li et al.,
// USENIX Security 2022): each input is quantised after adding a secret
// per-coordinate salt (so an attacker cannot aim just beside a
// quantisation step), every sliding window of the quantised vector is
// hashed, and the K largest distinct hashes are the query's fingerprint.
// Two queries that share at least `matchThreshold` of their K hashes are
// near-duplicates. Boundary searches and label-only membership floods send
// many small variations of one input; natural traffic rarely repeats. An
// exact repeat (every hash shared) is a retry, not a probe, and is not
// counted.
//
// Bounds: the fingerprints of the last `history` queries (history × K ×
// 4 bytes) and a ring of match flags over the last `history` queries.

export type QueryHashingOptions = {
  levels: number
  windowSize: number
  topK: number
  matchThreshold: number
  history: number
  salt: number
}

export const DEFAULT_QUERY_HASHING_OPTIONS: QueryHashingOptions = {
  levels: 50,
  windowSize: 20,
  topK: 20,
  matchThreshold: 12,
  history: 128,
  salt: 0x5eed,
}

export type QueryHashingState = {
  fingerprints: Uint32Array // history × topK, 0 = empty slot
  matches: Uint8Array // ring: 1 where the query matched an earlier one
  queries: number
}

export function createQueryHashingState(options: QueryHashingOptions): QueryHashingState {
  return { fingerprints: new Uint32Array(options.history * options.topK), matches: new Uint8Array(options.history), queries: 0 }
}

// The salt of coordinate i is the i-th draw of a generator seeded with
// `salt`, whatever the input's length, so one sequence per salt and level
// count serves every length: it grows to the longest input seen.
const salts = new Map<string, Float32Array>()

function saltFor(length: number, options: QueryHashingOptions): Float32Array {
  const id = `${options.salt}:${options.levels}`
  let salt = salts.get(id)
  if (!salt || salt.length < length) {
    const random = seededRandom(options.salt)
    salt = Float32Array.from({ length: Math.max(length, 2 * (salt?.length ?? 0), 256) }, () => random() / options.levels)
    if (salts.size >= 16) salts.clear()
    salts.set(id, salt)
  }
  return salt
}

const HASH_BASE = 0x01000193
// hashString's seed (FNV-1a's offset basis).
const HASH_SEED = 0x811c9dc5

// The quantised input, reused from query to query (grown when a longer input
// comes): one allocation less per query for the collector.
let quantisedScratch = new Int32Array(1024)

// Inputs are expected in [0, 1] (pixels) or standardised features; values
// are clamped to [-8, 8] before quantisation so one huge value cannot
// dominate. Window hashes roll (Rabin–Karp, mod 2³²) and are then mixed
// (murmur3's finaliser), so a query costs O(length), not O(length · window);
// the K largest distinct hashes are kept in a small sorted array.
export function fingerprint(input: ArrayLike<number>, options: QueryHashingOptions): Uint32Array {
  const salt = saltFor(input.length, options)
  const size = Math.min(options.windowSize, input.length)
  if (quantisedScratch.length < input.length) quantisedScratch = new Int32Array(input.length)
  const quantised = quantisedScratch
  for (let i = 0; i < input.length; i++) {
    const value = Math.min(8, Math.max(-8, input[i]!))
    quantised[i] = Math.floor((value + salt[i]!) * options.levels) + 1024
  }
  let outgoingWeight = 1
  for (let i = 1; i < size; i++) outgoingWeight = Math.imul(outgoingWeight, HASH_BASE)
  const top = new Uint32Array(options.topK)
  let held = 0
  let rolling = options.salt | 0
  for (let i = 0; i < input.length; i++) {
    if (i >= size) rolling = (rolling - Math.imul(quantised[i - size]!, outgoingWeight)) | 0
    rolling = (Math.imul(rolling, HASH_BASE) + quantised[i]!) | 0
    if (i < size - 1) continue
    let hash = rolling ^ (rolling >>> 16)
    hash = Math.imul(hash, 0x85ebca6b)
    hash ^= hash >>> 13
    hash = Math.imul(hash, 0xc2b2ae35)
    hash = ((hash ^ (hash >>> 16)) >>> 0) || 1
    // 0 marks an empty slot in the history, so it is never a hash.
    if (held === options.topK && hash <= top[held - 1]!) continue
    let position = held < options.topK ? held : held - 1
    let duplicate = false
    while (position > 0 && top[position - 1]! <= hash) {
      if (top[position - 1] === hash) {
        duplicate = true
        break
      }
      position--
    }
    if (duplicate) continue
    const last = Math.min(held, options.topK - 1)
    top.copyWithin(position + 1, position, last)
    top[position] = hash
    if (held < options.topK) held++
  }
  return top.subarray(0, held)
}

// Text is fingerprinted as one coordinate per character of its NFKC,
// lower-cased form (foldForHashing): the character's hash, in [0, 1).
export function foldForHashing(text: string): string {
  return text.normalize('NFKC').toLowerCase()
}

let codesScratch = new Float64Array(1024)

// The fingerprint of text folded by foldForHashing. A character's hash is
// FNV-1a over its UTF-16 units, as hashString computes it, without making a
// string of each character.
export function fingerprintFoldedText(folded: string, options: QueryHashingOptions): Uint32Array {
  if (codesScratch.length < folded.length) codesScratch = new Float64Array(folded.length * 2)
  const codes = codesScratch
  let count = 0
  for (let i = 0; i < folded.length; ) {
    const unit = folded.charCodeAt(i)
    const pair = unit >= 0xd800 && unit <= 0xdbff && i + 1 < folded.length && (folded.charCodeAt(i + 1) & 0xfc00) === 0xdc00
    let hash = Math.imul(HASH_SEED ^ unit, 0x01000193)
    if (pair) hash = Math.imul(hash ^ folded.charCodeAt(i + 1), 0x01000193)
    codes[count++] = ((hash >>> 0) % 1000) / 1000
    i += pair ? 2 : 1
  }
  return fingerprint(codes.subarray(0, count), { ...options, levels: 1000 })
}

// Records the fingerprint and answers whether it is a near-duplicate: whether
// some remembered query shares at least `matchThreshold` of its hashes
// without being an exact repeat (every hash shared). Fingerprints are sorted
// in descending order (0s, the empty slots, last), so counting shared hashes
// is a merge of two short sorted lists; a merge stops as soon as what is left
// of either list could no longer reach the threshold, which is most of them
// for natural traffic (about half the near-duplicate search's time).
export function observeQueryHashes(state: QueryHashingState, options: QueryHashingOptions, print: Uint32Array): { matched: boolean } {
  const k = options.topK
  const stored = state.fingerprints
  const length = print.length
  const needed = Math.min(options.matchThreshold, length)
  let matched = false
  const held = Math.min(state.queries, options.history)
  for (let q = 0; q < held && needed > 0 && !matched; q++) {
    const base = q * k
    let shared = 0
    let i = 0
    let j = 0
    while (i < length && j < k) {
      const theirs = stored[base + j]!
      if (theirs === 0) break
      const mine = print[i]!
      if (mine === theirs) {
        shared++
        i++
        j++
        continue
      }
      if (mine > theirs) i++
      else j++
      if (shared + Math.min(length - i, k - j) < needed) break
    }
    matched = shared >= needed && shared < length
  }
  const slot = state.queries % options.history
  stored.fill(0, slot * k, (slot + 1) * k)
  stored.set(print.subarray(0, k), slot * k)
  state.matches[slot] = matched ? 1 : 0
  state.queries++
  return { matched }
}

export function recentMatches(state: QueryHashingState): number {
  let count = 0
  for (const flag of state.matches) count += flag
  return count
}
