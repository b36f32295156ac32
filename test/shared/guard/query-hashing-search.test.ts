import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createQueryHashingState, DEFAULT_QUERY_HASHING_OPTIONS, fingerprint, observeQueryHashes, type QueryHashingOptions } from '../../../src/shared/guard/query-hashing.ts'
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

describe('fingerprints', () => {
  it('depend only on the input, whatever was fingerprinted before (the quantised buffer is reused)', () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.double({ min: -10, max: 10, noNaN: true }), { minLength: 1, maxLength: 1500 }), { minLength: 1, maxLength: 6 }), (inputs) => {
        const alone = inputs.map((input) => Array.from(fingerprint(input, DEFAULT_QUERY_HASHING_OPTIONS)))
        // Again, in reverse order, so each follows inputs of other lengths.
        const after = [...inputs].reverse().map((input) => Array.from(fingerprint(input, DEFAULT_QUERY_HASHING_OPTIONS))).reverse()
        expect(after).toEqual(alone)
        for (const [i, input] of inputs.entries()) expect(Array.from(fingerprint(Float64Array.from(input), DEFAULT_QUERY_HASHING_OPTIONS))).toEqual(alone[i])
      }),
      fuzzSettings(200, process.env),
    )
  })
})
