import { shapiroWilk } from './shapiro-wilk.ts'

// PRADA (Juuti et al., EuroS&P 2019), with bounded memory. For each query the
// detector finds the minimum L2 distance to the earlier queries of the same
// predicted class (its "growing set"); a query farther than the class's
// threshold (mean − std of the distances that admitted earlier members)
// joins the set. Natural queries give minimum distances that look roughly
// normal; synthetic probing (Jacobian augmentation, small perturbations of
// seeds) gives many tiny distances next to the seeds' large ones, a skewed or
// bimodal distribution. Every `testEvery` queries the last `window` minimum
// distances are tested with Shapiro–Wilk; W < δ flags the client.
//
// Bounds: each class keeps at most `maxPerClass` projected vectors (a ring:
// the oldest is replaced), classes beyond `maxClasses` share buckets, and
// only the last `window` distances are kept. State ≈ maxClasses ·
// maxPerClass · dims · 4 bytes + window · 4 bytes.

const MIN_ADMITTED_FOR_THRESHOLD = 8

export type PradaOptions = {
  dimensions: number
  delta: number
  window: number
  minSamples: number
  testEvery: number
  maxPerClass: number
  maxClasses: number
}

export const DEFAULT_PRADA_OPTIONS: Omit<PradaOptions, 'dimensions'> = {
  delta: 0.92,
  window: 200,
  minSamples: 50,
  testEvery: 10,
  maxPerClass: 16,
  maxClasses: 10,
}

export type PradaState = {
  dimensions: number
  queries: number
  // Per class: how many members were ever admitted (the ring position) and
  // the sum and sum of squares of the distances that admitted them.
  admitted: number[]
  admittedSum: number[]
  admittedSquares: number[]
  members: Float32Array // maxClasses × maxPerClass × dimensions
  distances: Float32Array // ring of the last `window` minimum distances
  distanceCount: number
  lastW: number | null
  lastP: number | null
  flagged: boolean
}

export function createPradaState(options: PradaOptions): PradaState {
  return {
    dimensions: options.dimensions,
    queries: 0,
    admitted: new Array<number>(options.maxClasses).fill(0),
    admittedSum: new Array<number>(options.maxClasses).fill(0),
    admittedSquares: new Array<number>(options.maxClasses).fill(0),
    members: new Float32Array(options.maxClasses * options.maxPerClass * options.dimensions),
    distances: new Float32Array(options.window),
    distanceCount: 0,
    lastW: null,
    lastP: null,
    flagged: false,
  }
}

function distance(a: Float32Array, offset: number, b: Float32Array): number {
  let sum = 0
  for (let i = 0; i < b.length; i++) {
    const d = a[offset + i]! - b[i]!
    sum += d * d
  }
  return Math.sqrt(sum)
}

function recentDistances(state: PradaState, window: number): Float32Array {
  const count = Math.min(state.distanceCount, window)
  const out = new Float32Array(count)
  for (let i = 0; i < count; i++) out[i] = state.distances[(state.distanceCount - count + i) % window]!
  return out
}

// Feeds one projected query and its predicted class; mutates the state and
// answers whether this query ran the test.
export function observePrada(state: PradaState, options: PradaOptions, query: Float32Array, predictedClass: number): { tested: boolean } {
  if (query.length !== state.dimensions) throw new RangeError(`PRADA expects ${state.dimensions} dimensions, got ${query.length}`)
  const cls = ((predictedClass % options.maxClasses) + options.maxClasses) % options.maxClasses
  state.queries++
  const stride = options.maxPerClass * options.dimensions
  const held = Math.min(state.admitted[cls]!, options.maxPerClass)
  let nearest = Infinity
  for (let m = 0; m < held; m++) nearest = Math.min(nearest, distance(state.members, cls * stride + m * options.dimensions, query))
  const admit = (distanceAdmitted: number) => {
    const slot = state.admitted[cls]! % options.maxPerClass
    state.members.set(query, cls * stride + slot * options.dimensions)
    state.admitted[cls]!++
    state.admittedSum[cls]! += distanceAdmitted
    state.admittedSquares[cls]! += distanceAdmitted * distanceAdmitted
  }
  if (held === 0) {
    admit(0)
    return { tested: false }
  }
  // An exact repeat (a retry, a cache miss) teaches the client nothing new
  // and is no probe: it is left out of the distribution.
  if (nearest === 0) return { tested: false }
  state.distances[state.distanceCount % options.window] = nearest
  state.distanceCount++
  // The threshold counts only members admitted with a distance (not the
  // first), and applies once it rests on a few of them: with one or two, mean
  // − std is about the mean and would turn away half of all natural queries,
  // leaving the set too thin to hold the seeds that synthetic queries sit
  // next to.
  const n = state.admitted[cls]! - 1
  const mean = n > 0 ? state.admittedSum[cls]! / n : 0
  const std = n > 1 ? Math.sqrt(Math.max(0, state.admittedSquares[cls]! / n - mean * mean)) : 0
  if (n < MIN_ADMITTED_FOR_THRESHOLD || nearest > Math.max(mean - std, 0)) admit(nearest)
  if (state.distanceCount < options.minSamples || state.queries % options.testEvery !== 0) return { tested: false }
  try {
    const result = shapiroWilk(recentDistances(state, options.window))
    state.lastW = result.w
    state.lastP = result.p
  } catch {
    // All distances identical (the same query over and over): as far from a
    // natural distribution as it gets.
    state.lastW = 0
    state.lastP = 0
  }
  state.flagged = state.lastW < options.delta
  return { tested: true }
}
