import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { classCoverageEntropy, createConfidenceState, lowConfidenceZ, observeAnswer } from '../../../src/shared/guard/confidence-signals.ts'
import { actionForRisk, resolveGuardPolicy } from '../../../src/shared/guard/guard-policy.ts'
import { createLogitBiasState, observeLogitBias } from '../../../src/shared/guard/logit-bias-sweep.ts'
import { createPradaState, DEFAULT_PRADA_OPTIONS, observePrada, type PradaOptions } from '../../../src/shared/guard/prada.ts'
import { createQueryHashingState, DEFAULT_QUERY_HASHING_OPTIONS, fingerprint, fingerprintFoldedText, foldForHashing, observeQueryHashes, recentMatches } from '../../../src/shared/guard/query-hashing.ts'
import { createRandomProjection } from '../../../src/shared/guard/random-projection.ts'
import { explainRisk, riskScore, strengthAbove, strengthBelow } from '../../../src/shared/guard/risk-score.ts'
import { hashString, seededRandom } from '../../../src/shared/guard/seeded-random.ts'
import { decodeState, encodeState } from '../../../src/shared/guard/state-codec.ts'
import { createTemplateState, DEFAULT_TEMPLATE_OPTIONS, dominantTemplateShare, observePrompt } from '../../../src/shared/guard/template-flood.ts'
import { giveBack, take } from '../../../src/shared/guard/token-bucket.ts'
import { createVolumeState, DEFAULT_VOLUME_OPTIONS, observeVolume, volumeZ } from '../../../src/shared/guard/volume-anomaly.ts'

const random = seededRandom(42)
const gaussian = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
const vector = (n: number) => Float64Array.from({ length: n }, () => random())

describe('random projection', () => {
  it('is deterministic per seed and keeps distances roughly', () => {
    const a = createRandomProjection({ inputDimensions: 784, outputDimensions: 64, seed: 7 })
    const b = createRandomProjection({ inputDimensions: 784, outputDimensions: 64, seed: 7 })
    const x = vector(784)
    expect(a.project(x)).toEqual(b.project(x))
    expect(createRandomProjection({ inputDimensions: 784, outputDimensions: 64, seed: 8 }).project(x)).not.toEqual(a.project(x))
    const ratios: number[] = []
    for (let i = 0; i < 100; i++) {
      const u = vector(784)
      const v = vector(784)
      const pu = a.project(u)
      const pv = a.project(v)
      let original = 0
      let projected = 0
      for (let j = 0; j < 784; j++) original += (u[j]! - v[j]!) ** 2
      for (let j = 0; j < 64; j++) projected += (pu[j]! - pv[j]!) ** 2
      ratios.push(Math.sqrt(projected / original))
    }
    const mean = ratios.reduce((s, r) => s + r, 0) / ratios.length
    expect(mean).toBeGreaterThan(0.9)
    expect(mean).toBeLessThan(1.1)
    expect(Math.min(...ratios)).toBeGreaterThan(0.6)
    expect(Math.max(...ratios)).toBeLessThan(1.4)
  })

  it('refuses more than 128 dimensions and inputs of the wrong size', () => {
    expect(() => createRandomProjection({ inputDimensions: 10, outputDimensions: 129, seed: 1 })).toThrow(RangeError)
    expect(() => createRandomProjection({ inputDimensions: 10, outputDimensions: 8, seed: 1 }).project([1, 2])).toThrow(/expected 10/)
  })
})

describe('PRADA', () => {
  const options: PradaOptions = { ...DEFAULT_PRADA_OPTIONS, dimensions: 16 }

  it('leaves natural-looking queries alone', () => {
    const state = createPradaState(options)
    for (let i = 0; i < 400; i++) {
      const q = Float32Array.from({ length: 16 }, gaussian)
      observePrada(state, options, q, i % 10)
    }
    expect(state.lastW).toBeGreaterThan(options.delta)
    expect(state.flagged).toBe(false)
  })

  it('flags seeds followed by small synthetic steps within a few dozen queries', () => {
    const state = createPradaState(options)
    const seeds = Array.from({ length: 10 }, () => Float32Array.from({ length: 16 }, gaussian))
    seeds.forEach((seed, i) => observePrada(state, options, seed, i))
    let flaggedAt = -1
    for (let i = 0; i < 100 && flaggedAt < 0; i++) {
      // Jacobian-style augmentation: a seed plus λ·sign(gradient), λ small.
      const seed = seeds[i % 10]!
      const step = seed.map((v) => v + 0.1 * Math.sign(gaussian()))
      observePrada(state, options, step, i % 10)
      if (state.flagged) flaggedAt = i
    }
    expect(flaggedAt).toBeGreaterThanOrEqual(0)
    expect(flaggedAt).toBeLessThan(50)
  })

  it('leaves exact repeats out of the distance distribution', () => {
    const state = createPradaState(options)
    const q = Float32Array.from({ length: 16 }, gaussian)
    for (let i = 0; i < 100; i++) observePrada(state, options, q, 0)
    expect(state.distanceCount).toBe(0)
    expect(state.flagged).toBe(false)
  })

  it('keeps its memory bounded however many queries it sees', () => {
    const state = createPradaState(options)
    const size = () => encodeState(state).length
    for (let i = 0; i < 50; i++) observePrada(state, options, Float32Array.from({ length: 16 }, gaussian), i % 37)
    const early = size()
    for (let i = 0; i < 2000; i++) observePrada(state, options, Float32Array.from({ length: 16 }, gaussian), i % 37)
    expect(Math.abs(size() - early)).toBeLessThan(64)
    expect(state.members.length).toBe(options.maxClasses * options.maxPerClass * 16)
    expect(() => observePrada(state, options, new Float32Array(3), 0)).toThrow(RangeError)
  })
})

describe('a client’s signals for one model', () => {
  it('feeds PRADA only inputs of the size it first saw, and still counts the answers', async () => {
    const { createModelSignals, observeClassifierQuery, readSignals, signalOptions } = await import('../../../src/shared/guard/model-signals.ts')
    const policy = resolveGuardPolicy()
    const options = signalOptions(policy, 1)
    const signals = createModelSignals('classifier', options)
    observeClassifierQuery(signals, options, { input: vector(64), probabilities: [0.9, 0.1] })
    observeClassifierQuery(signals, options, { input: vector(10), probabilities: [0.2, 0.8] })
    observeClassifierQuery(signals, options, { input: vector(64), label: 1 })
    expect(signals.inputDimensions).toBe(64)
    expect(signals.prada!.queries).toBe(2)
    expect(signals.confidence.answers).toBe(2)
    expect(Array.from(signals.confidence.classCounts.subarray(0, 2))).toEqual([1, 2])
    expect(readSignals(signals, options, policy).map((reading) => reading.signal)).toEqual(['near_duplicates'])
  })
})

describe('near-duplicate query hashing', () => {
  it('matches small variations of one input and not unrelated inputs', () => {
    const options = DEFAULT_QUERY_HASHING_OPTIONS
    const benign = createQueryHashingState(options)
    for (let i = 0; i < 200; i++) observeQueryHashes(benign, options, fingerprint(vector(784), options))
    expect(recentMatches(benign)).toBe(0)

    const probing = createQueryHashingState(options)
    const base = vector(784)
    let matched = 0
    for (let i = 0; i < 50; i++) {
      const variant = base.map((v, j) => (j === i ? 1 - v : v))
      if (observeQueryHashes(probing, options, fingerprint(variant, options)).matched) matched++
    }
    // A few variants quantise exactly like an earlier one: repeats, not counted.
    expect(matched).toBeGreaterThanOrEqual(40)
    expect(recentMatches(probing)).toBe(matched)
  })

  it('does not count exact repeats', () => {
    const options = DEFAULT_QUERY_HASHING_OPTIONS
    const state = createQueryHashingState(options)
    const x = vector(784)
    for (let i = 0; i < 20; i++) expect(observeQueryHashes(state, options, fingerprint(x, options)).matched).toBe(false)
    expect(recentMatches(state)).toBe(0)
  })

  it('depends on the secret salt', () => {
    const x = vector(100)
    expect(fingerprint(x, DEFAULT_QUERY_HASHING_OPTIONS)).not.toEqual(fingerprint(x, { ...DEFAULT_QUERY_HASHING_OPTIONS, salt: 99 }))
  })

  it('salts a coordinate the same whatever the lengths of the inputs before', () => {
    const options = DEFAULT_QUERY_HASHING_OPTIONS
    const short = vector(30)
    const salted = fingerprint(short, { ...options, salt: 4242 })
    // A much longer input grows the salt sequence; the short one's prefix must not move.
    fingerprint(vector(5000), { ...options, salt: 4242 })
    expect(fingerprint(short, { ...options, salt: 4242 })).toEqual(salted)
  })

  it('fingerprints text as one coordinate per character: its hash, in [0, 1)', () => {
    const options = DEFAULT_QUERY_HASHING_OPTIONS
    // The definition, character by character (astral characters and lone surrogates included).
    const reference = (text: string) => fingerprint(Array.from(foldForHashing(text), (char) => (hashString(char) % 1000) / 1000), { ...options, levels: 1000 })
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (text) => {
        expect(fingerprintFoldedText(foldForHashing(text), options)).toEqual(reference(text))
      }),
      { numRuns: 500, seed: 20261128 },
    )
    for (const text of ['Ｆｕｌｌｗｉｄｔｈ ＴＥＸＴ', 'emoji 🙂🙂 and \ud800 lone', 'ﬁne ligatures'.repeat(40)]) expect(fingerprintFoldedText(foldForHashing(text), options)).toEqual(reference(text))
  })
})

describe('answers', () => {
  it('counts low-confidence answers against the baseline and measures class coverage', () => {
    const options = { tau: 0.6, baseline: 0.05, maxClasses: 10 }
    const benign = createConfidenceState(options)
    for (let i = 0; i < 200; i++) observeAnswer(benign, options, i % 20 === 0 ? [0.5, 0.5] : i % 2 ? [0.95, 0.05] : [0.1, 0.9])
    expect(lowConfidenceZ(benign, options)).toBeCloseTo(0, 5)
    expect(classCoverageEntropy(benign, 2)).toBeGreaterThan(0.99)

    const boundary = createConfidenceState(options)
    for (let i = 0; i < 200; i++) observeAnswer(boundary, options, [0.55, 0.45, 0, 0, 0, 0, 0, 0, 0, 0])
    expect(lowConfidenceZ(boundary, options)).toBeGreaterThan(20)
    expect(classCoverageEntropy(boundary, 10)).toBe(0)
  })
})

describe('LLM signals', () => {
  it('counts distinct biased tokens, saturating at its bound', () => {
    const state = createLogitBiasState()
    for (let i = 0; i < 3000; i++) observeLogitBias(state, { maxTracked: 1024 }, { [String(i)]: 100, '7': -100 }, i % 2 === 0)
    observeLogitBias(state, { maxTracked: 1024 }, undefined, true)
    expect(state.tokenIds).toHaveLength(1024)
    expect(state.biasedRequests).toBe(3000)
    expect(state.biasedWithLogprobs).toBe(1500)
    expect([...state.tokenIds]).toEqual([...state.tokenIds].sort((a, b) => a - b))
  })

  it('sees a templated flood and not varied prompts', () => {
    const flood = createTemplateState(DEFAULT_TEMPLATE_OPTIONS)
    for (let i = 0; i < 64; i++) observePrompt(flood, DEFAULT_TEMPLATE_OPTIONS, foldForHashing(`Classify the sentiment of the following review as positive or negative. Review: "${'great '.repeat(i % 5)}product number ${i}" Answer with one word only.`))
    expect(dominantTemplateShare(flood, DEFAULT_TEMPLATE_OPTIONS)).toBe(1)

    const varied = createTemplateState(DEFAULT_TEMPLATE_OPTIONS)
    const words = ['why', 'is', 'the', 'sky', 'blue', 'how', 'do', 'I', 'bake', 'bread', 'write', 'a', 'poem', 'about', 'cats', 'explain', 'tcp']
    for (let i = 0; i < 64; i++) observePrompt(varied, DEFAULT_TEMPLATE_OPTIONS, foldForHashing(Array.from({ length: 12 }, () => words[Math.floor(random() * words.length)]).join(' ')))
    expect(dominantTemplateShare(varied, DEFAULT_TEMPLATE_OPTIONS)).toBeLessThan(0.1)
  })
})

describe('volume', () => {
  it('scores a burst against the moving baseline', () => {
    const options = { ...DEFAULT_VOLUME_OPTIONS, baselineRate: 10 }
    let now = 1_700_000_000_000
    const state = createVolumeState(options, now)
    for (let minute = 0; minute < 30; minute++) {
      for (let i = 0; i < 10; i++) observeVolume(state, options, now + i * 1000)
      now += 60_000
    }
    observeVolume(state, options, now)
    expect(Math.abs(volumeZ(state, options))).toBeLessThan(4)
    for (let i = 0; i < 200; i++) observeVolume(state, options, now + 10)
    expect(volumeZ(state, options)).toBeGreaterThan(20)
  })
})

describe('risk score', () => {
  it('combines signals as independent evidence and explains itself', () => {
    expect(strengthAbove(5, 10, 10)).toBe(0)
    expect(strengthAbove(10, 10, 10)).toBe(0.5)
    expect(strengthAbove(30, 10, 10)).toBe(1)
    expect(strengthBelow(0.95, 0.9, 0.1)).toBe(0)
    expect(strengthBelow(0.7, 0.9, 0.1)).toBe(1)
    const none = riskScore([{ signal: 'prada', value: 0.97, threshold: 0.9, strength: 0, detail: '' }])
    expect(none).toEqual({ score: 0, signals: [] })
    expect(explainRisk(none)).toMatch(/no signal/)
    const both = riskScore([
      { signal: 'volume', value: 9, threshold: 6, strength: 0.5, detail: 'burst' },
      { signal: 'near_duplicates', value: 8, threshold: 8, strength: 0.5, detail: 'repeats' },
    ])
    expect(both.score).toBeCloseTo(1 - (1 - 0.25) * (1 - 0.5), 4)
    expect(both.signals.map((s) => s.signal)).toEqual(['near_duplicates', 'volume'])
    expect(explainRisk(both)).toBe('near_duplicates 50%: repeats; volume 50%: burst')
  })

  it('maps risk onto the policy ladder', () => {
    const policy = resolveGuardPolicy()
    expect([0.1, 0.45, 0.7, 0.9].map((r) => actionForRisk(policy, r))).toEqual(['observe', 'degrade', 'throttle', 'block'])
    expect(policy.fail_mode).toBe('closed')
    expect(() => resolveGuardPolicy({ actions: { block: 2 } })).toThrow()
    expect(() => resolveGuardPolicy({ surprise: true } as never)).toThrow()
  })
})

describe('token bucket', () => {
  it('allows bursts up to capacity, refills at the rate and says when to retry', () => {
    const t0 = 1000
    let decision = take(undefined, 60, 60_000, 60, t0)
    expect(decision).toMatchObject({ allowed: true, remaining: 0 })
    decision = take(decision.bucket, 60, 60_000, 1, t0)
    expect(decision).toMatchObject({ allowed: false, retryAfterMs: 1000 })
    decision = take(decision.bucket, 60, 60_000, 1, t0 + 1000)
    expect(decision.allowed).toBe(true)
    expect(take(undefined, 60, 60_000, 61, t0)).toMatchObject({ allowed: false, retryAfterMs: 60_000 })
    const reconciled = giveBack(decision.bucket, 60, 60_000, 5, t0 + 1000)
    expect(reconciled.tokens).toBeCloseTo(5, 6)
    expect(giveBack(reconciled, 60, 60_000, -200, t0 + 1000).tokens).toBe(-60)
  })
})

describe('state codec', () => {
  it('round-trips typed arrays and plain values', () => {
    const state = { a: Float32Array.from([1.5, -2, 3e-8]), b: Uint32Array.from([0, 4294967295]), c: new Uint8Array([1, 2, 3]).subarray(1), n: null, s: 'x' }
    const decoded = decodeState<typeof state>(encodeState(state))
    expect(decoded.a).toBeInstanceOf(Float32Array)
    expect(decoded).toEqual({ ...state, c: Uint8Array.from([2, 3]) })
  })
})
