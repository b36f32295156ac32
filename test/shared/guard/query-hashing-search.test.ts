import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createQueryHashingState, observeQueryHashes, type QueryHashingOptions } from '../../../src/shared/guard/query-hashing.ts'
import { fuzzSettings } from '../../support/fuzz-settings.ts'

// The near-duplicate search stops a merge early once the threshold is out of
// reach; this is the full search it replaced (every remembered fingerprint
// merged to the end, the best count kept), as the reference.
function referenceMatched(state: { fingerprints: Uint32Array; queries: number }, options: QueryHashingOptions, print: Uint32Array): boolean {
  const k = options.topK
  let best = 0
  for (let q = 0; q < Math.min(state.queries, options.history); q++) {
    let shared = 0
    for (let i = 0, j = 0; i < print.length && j < k; ) {
      const theirs = state.fingerprints[q * k + j]!
      if (theirs === 0) break
      if (print[i] === theirs) shared++, i++, j++
      else if (print[i]! > theirs) i++
      else j++
    }
    if (shared > best && shared < print.length) best = shared
  }
  const slot = state.queries % options.history
  state.fingerprints.fill(0, slot * k, (slot + 1) * k)
  state.fingerprints.set(print.subarray(0, k), slot * k)
  state.queries++
  const needed = Math.min(options.matchThreshold, print.length)
  return needed > 0 && best >= needed
}

// Fingerprints as `fingerprint` makes them: distinct non-zero hashes in
// descending order, here from a small alphabet so that queries overlap.
const printArbitrary = fc
  .uniqueArray(fc.integer({ min: 1, max: 40 }), { maxLength: 8 })
  .map((hashes) => Uint32Array.from(hashes.sort((a, b) => b - a)))

describe('near-duplicate search', () => {
  it('decides exactly as the full search does, across the ring', () => {
    fc.assert(
      fc.property(
        fc.record({ topK: fc.integer({ min: 1, max: 8 }), history: fc.integer({ min: 1, max: 12 }), matchThreshold: fc.integer({ min: 1, max: 8 }) }),
        fc.array(printArbitrary, { maxLength: 60 }),
        (shape, prints) => {
          const options: QueryHashingOptions = { levels: 50, windowSize: 4, salt: 1, ...shape }
          const state = createQueryHashingState(options)
          const reference = { fingerprints: new Uint32Array(options.history * options.topK), queries: 0 }
          for (const raw of prints) {
            const print = raw.subarray(0, options.topK)
            expect(observeQueryHashes(state, options, print).matched).toBe(referenceMatched(reference, options, print))
          }
          expect(Array.from(state.fingerprints)).toEqual(Array.from(reference.fingerprints))
        },
      ),
      fuzzSettings(500, process.env),
    )
  })
})
