// The standard normal distribution in double precision, from first
// principles (no tables): erfc by its positive power series for small
// arguments and its continued fraction (modified Lentz) for large ones, and
// the quantile by Halley steps on the CDF. Shapiro–Wilk, the binomial tail
// approximation and the watermark z-scores all rest on these.

const SQRT_PI = Math.sqrt(Math.PI)
const SERIES_LIMIT = 2.5

function erfSeries(x: number): number {
  // erf(x) = 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)): every term is
  // positive, so nothing cancels.
  let term = x
  let sum = x
  for (let n = 1; n < 200; n++) {
    term *= (2 * x * x) / (2 * n + 1)
    sum += term
    if (term < sum * 1e-17) break
  }
  return (2 / SQRT_PI) * Math.exp(-x * x) * sum
}

function erfcContinuedFraction(x: number): number {
  // erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))).
  const tiny = 1e-300
  let f = x
  let c = x
  let d = 0
  for (let n = 1; n < 500; n++) {
    const a = n / 2
    d = x + a * d
    d = Math.abs(d) < tiny ? tiny : d
    c = x + a / c
    c = Math.abs(c) < tiny ? tiny : c
    d = 1 / d
    const delta = c * d
    f *= delta
    if (Math.abs(delta - 1) < 1e-16) break
  }
  return Math.exp(-x * x) / (SQRT_PI * f)
}

export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN
  if (x < 0) return 2 - erfc(-x)
  if (x < SERIES_LIMIT) return 1 - erfSeries(x)
  return erfcContinuedFraction(x)
}

export function normalPdf(z: number): number {
  return Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI)
}

export function normalCdf(z: number): number {
  return 0.5 * erfc(-z / Math.SQRT2)
}

// P(Z > z), accurate far into the tail (where 1 − Φ(z) would round to 0).
export function normalUpperTail(z: number): number {
  return 0.5 * erfc(z / Math.SQRT2)
}

export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) {
    if (p === 0) return -Infinity
    if (p === 1) return Infinity
    return NaN
  }
  if (p > 0.5) return -normalQuantile(1 - p)
  // Start from the tail approximation z ≈ −√(−2 ln p) corrected, then
  // Halley's method on Φ(z) − p, which converges cubically.
  const t = Math.sqrt(-2 * Math.log(p))
  let z = -(t - (2.515517 + 0.802853 * t + 0.010328 * t * t) / (1 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t))
  for (let i = 0; i < 50; i++) {
    const error = normalCdf(z) - p
    const density = normalPdf(z)
    if (density === 0) break
    const u = error / density
    const step = u / (1 + (z * u) / 2)
    z -= step
    if (Math.abs(step) < 1e-15 * Math.max(1, Math.abs(z))) break
  }
  return z
}
