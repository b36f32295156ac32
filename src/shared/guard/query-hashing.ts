import { hashString, seededRandom } from './seeded-random.ts'

// Near-duplicate query detection in the manner of Blacklight (Li et al.,
// USENIX Security 2022): each input is quantised after adding a secret
// per-coordinate salt (so an attacker cannot aim just beside a
// quantisation step), every sliding window of the quantised vector is
// hashed, and the K largest distinct hashes are the query's fingerprint.
// Two queries that share at least `matchThreshold` of their K hashes are
// near-duplicates. Boundary searches and label-only membership floods send
// many small variations of one input; natural traffic rarely repeats.
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

const salts = new Map<string, Float32Array>()

function saltFor(length: number, options: QueryHashingOptions): Float32Array {
  const id = `${length}:${options.salt}:${options.levels}`
  let salt = salts.get(id)
  if (!salt) {
    const random = seededRandom(options.salt)
    salt = Float32Array.from({ length }, () => random() / options.levels)
    if (salts.size >= 16) salts.clear()
    salts.set(id, salt)
  }
  return salt
}

// Inputs are expected in [0, 1] (pixels) or standardised features; values
// are clamped to [-8, 8] before quantisation so one huge value cannot
// dominate.
export function fingerprint(input: ArrayLike<number>, options: QueryHashingOptions): Uint32Array {
  const salt = saltFor(input.length, options)
  const quantised = new Int32Array(input.length)
  for (let i = 0; i < input.length; i++) {
    const value = Math.min(8, Math.max(-8, input[i]!))
    quantised[i] = Math.floor((value + salt[i]!) * options.levels)
  }
  const size = Math.min(options.windowSize, input.length)
  const hashes = new Set<number>()
  for (let start = 0; start + size <= quantised.length; start++) {
    let hash = 0x811c9dc5 ^ options.salt
    for (let i = start; i < start + size; i++) {
      hash ^= quantised[i]! & 0xffff
      hash = Math.imul(hash, 0x01000193)
      hash ^= quantised[i]! >>> 16
      hash = Math.imul(hash, 0x01000193)
    }
    // 0 marks an empty slot in the history.
    hashes.add(hash >>> 0 || 1)
  }
  const sorted = Uint32Array.from(hashes).sort().reverse()
  return sorted.subarray(0, options.topK)
}

export function fingerprintText(text: string, options: QueryHashingOptions): Uint32Array {
  const codes = Array.from(text.normalize('NFKC').toLowerCase(), (char) => (hashString(char) % 1000) / 1000)
  return fingerprint(codes, { ...options, levels: 1000 })
}

// Records the fingerprint and answers the largest number of hashes it shares
// with any remembered query, and whether that makes it a near-duplicate.
export function observeQueryHashes(state: QueryHashingState, options: QueryHashingOptions, print: Uint32Array): { shared: number; matched: boolean } {
  const own = new Set(print)
  let best = 0
  const held = Math.min(state.queries, options.history)
  for (let q = 0; q < held; q++) {
    let shared = 0
    for (let k = 0; k < options.topK; k++) {
      const hash = state.fingerprints[q * options.topK + k]!
      if (hash !== 0 && own.has(hash)) shared++
    }
    if (shared > best) best = shared
  }
  const needed = Math.min(options.matchThreshold, print.length)
  const matched = needed > 0 && best >= needed
  const slot = state.queries % options.history
  state.fingerprints.fill(0, slot * options.topK, (slot + 1) * options.topK)
  state.fingerprints.set(print.subarray(0, options.topK), slot * options.topK)
  state.matches[slot] = matched ? 1 : 0
  state.queries++
  return { shared: best, matched }
}

export function recentMatches(state: QueryHashingState): number {
  let count = 0
  for (const flag of state.matches) count += flag
  return count
}
