import { normalQuantile, normalUpperTail } from './normal-distribution.ts'

// The Shapiro–Wilk test of normality by Royston's algorithm (AS R94, Applied
// Statistics 1995): the coefficients come from Blom-style normal scores with
// Royston's polynomial corrections for the two extreme ones, and the p-value
// from his normalising transformations of W (one for 4 ≤ n ≤ 11, one for
// n ≥ 12; n = 3 is exact). PRADA runs it on a client's minimum-distance
// distribution.

export type ShapiroWilkResult = { w: number; p: number; n: number }

export const SHAPIRO_WILK_MIN_N = 3
export const SHAPIRO_WILK_MAX_N = 5000

const C1 = [0, 0.221157, -0.147981, -2.07119, 4.434685, -2.706056]
const C2 = [0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633]
const C3 = [0.544, -0.39978, 0.025054, -6.714e-4]
const C4 = [1.3822, -0.77857, 0.062767, -0.0020322]
const C5 = [-1.5861, -0.31082, -0.083751, 0.0038915]
const C6 = [-0.4803, -0.082676, 0.0030302]
const G = [-2.273, 0.459]

function poly(coefficients: readonly number[], x: number): number {
  let result = 0
  for (let i = coefficients.length - 1; i >= 0; i--) result = result * x + coefficients[i]!
  return result
}

// The coefficients a₁…a_{n/2} for the upper half of the order statistics
// (the lower half is their negation). They depend on n only, so PRADA's
// repeated tests of windows of one size reuse them.
const coefficientCache = new Map<number, Float64Array>()

export function shapiroWilkCoefficients(n: number): Float64Array {
  const cached = coefficientCache.get(n)
  if (cached) return cached
  const half = Math.floor(n / 2)
  const a = new Float64Array(half)
  if (n === 3) {
    a[0] = Math.SQRT1_2
  } else {
    const m = new Float64Array(half)
    let summ2 = 0
    for (let i = 0; i < half; i++) {
      m[i] = normalQuantile((i + 1 - 0.375) / (n + 0.25))
      summ2 += m[i]! * m[i]!
    }
    summ2 *= 2
    const ssumm2 = Math.sqrt(summ2)
    const rsn = 1 / Math.sqrt(n)
    const a1 = poly(C1, rsn) - m[0]! / ssumm2
    let first: number
    let fac: number
    if (n > 5) {
      const a2 = -m[1]! / ssumm2 + poly(C2, rsn)
      fac = Math.sqrt((summ2 - 2 * m[0]! ** 2 - 2 * m[1]! ** 2) / (1 - 2 * a1 ** 2 - 2 * a2 ** 2))
      a[1] = a2
      first = 2
    } else {
      fac = Math.sqrt((summ2 - 2 * m[0]! ** 2) / (1 - 2 * a1 ** 2))
      first = 1
    }
    a[0] = a1
    for (let i = first; i < half; i++) a[i] = -m[i]! / fac
  }
  if (coefficientCache.size > 64) coefficientCache.clear()
  coefficientCache.set(n, a)
  return a
}

function pValue(w: number, n: number): number {
  if (n === 3) {
    const p = (6 / Math.PI) * (Math.asin(Math.sqrt(w)) - Math.PI / 3)
    return Math.min(1, Math.max(0, p))
  }
  const w1 = Math.log(1 - w)
  if (n <= 11) {
    const gamma = poly(G, n)
    if (w1 >= gamma) return 1e-99
    const y = -Math.log(gamma - w1)
    return normalUpperTail((y - poly(C3, n)) / Math.exp(poly(C4, n)))
  }
  const logN = Math.log(n)
  return normalUpperTail((w1 - poly(C5, logN)) / Math.exp(poly(C6, logN)))
}

// Throws RangeError for fewer than 3 or more than 5000 values, non-finite
// values, or values that are all identical (W is undefined there).
export function shapiroWilk(values: ArrayLike<number>): ShapiroWilkResult {
  const n = values.length
  if (n < SHAPIRO_WILK_MIN_N || n > SHAPIRO_WILK_MAX_N) throw new RangeError(`Shapiro–Wilk needs 3 to 5000 values, got ${n}`)
  const x = Float64Array.from(values)
  for (const value of x) if (!Number.isFinite(value)) throw new RangeError('Shapiro–Wilk needs finite values')
  x.sort()
  const range = x[n - 1]! - x[0]!
  if (!(range > 0)) throw new RangeError('Shapiro–Wilk is undefined when all values are identical')
  // Scaled by the range so that tiny or huge distances lose nothing.
  let mean = 0
  for (let i = 0; i < n; i++) mean += x[i]! / range
  mean /= n
  let ss = 0
  for (let i = 0; i < n; i++) ss += (x[i]! / range - mean) ** 2
  const a = shapiroWilkCoefficients(n)
  let b = 0
  for (let i = 0; i < a.length; i++) b += a[i]! * (x[n - 1 - i]! - x[i]!) / range
  const w = Math.min(1, (b * b) / ss)
  return { w, p: pValue(w, n), n }
}
