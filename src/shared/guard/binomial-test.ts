// P(X ≥ k) for X ~ Binomial(n, p), summed exactly in log space from k up
// (terms fall geometrically past the mode, so the sum stops early). Used
// where a p-value must stay meaningful down to 1e-300: DAWN's ownership
// verdicts need p < 1e-6 with margin to spare.
export function binomialUpperTail(n: number, k: number, p: number): number {
  if (!Number.isInteger(n) || !Number.isInteger(k) || n < 0) throw new RangeError('n and k must be integers, n ≥ 0')
  if (!(p >= 0 && p <= 1)) throw new RangeError('p must be in [0, 1]')
  if (k <= 0) return 1
  if (k > n) return 0
  if (p === 0) return 0
  if (p === 1) return 1
  // log C(n, k) by its product form.
  let logTerm = 0
  for (let i = 1; i <= k; i++) logTerm += Math.log((n - k + i) / i)
  logTerm += k * Math.log(p) + (n - k) * Math.log1p(-p)
  const logRatio = Math.log(p) - Math.log1p(-p)
  // Sum relative to the first term, then scale: no underflow on the way.
  let sum = 0
  let relative = 0
  for (let j = k; j <= n; j++) {
    const term = Math.exp(relative)
    sum += term
    if (term < sum * 1e-17 && j > n * p) break
    relative += Math.log((n - j) / (j + 1)) + logRatio
  }
  return Math.min(1, Math.exp(logTerm + Math.log(sum)))
}
