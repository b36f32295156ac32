// Aggregates a model version's traffic into windows: latency histogram,
// errors, predicted-class counts and a top-1 confidence histogram; and the
// population stability index (PSI) that compares a window with a reference.

// Upper bounds (ms) of the latency buckets; the last bucket is open-ended.
export const LATENCY_BOUNDS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
export const CONFIDENCE_BUCKETS = 10

export type MonitorWindow = {
  start: number
  requests: number
  errors: number
  rows: number
  latency: number[]
  classes: Record<string, number>
  confidence: number[]
}

export function emptyWindow(start: number): MonitorWindow {
  return {
    start,
    requests: 0,
    errors: 0,
    rows: 0,
    latency: Array(LATENCY_BOUNDS_MS.length + 1).fill(0),
    classes: {},
    confidence: Array(CONFIDENCE_BUCKETS).fill(0),
  }
}

export type Observation = { latencyMs: number; error: boolean; predictions: string[]; topConfidences: number[] }

export function observe(window: MonitorWindow, observation: Observation): MonitorWindow {
  window.requests++
  if (observation.error) window.errors++
  const bucket = LATENCY_BOUNDS_MS.findIndex((bound) => observation.latencyMs <= bound)
  window.latency[bucket === -1 ? LATENCY_BOUNDS_MS.length : bucket]!++
  for (const label of observation.predictions) window.classes[label] = (window.classes[label] ?? 0) + 1
  for (const confidence of observation.topConfidences) {
    const index = Math.min(CONFIDENCE_BUCKETS - 1, Math.max(0, Math.floor(confidence * CONFIDENCE_BUCKETS)))
    window.confidence[index]!++
  }
  window.rows += observation.predictions.length
  return window
}

// The latency at quantile q, as the upper bound of the bucket it falls in.
export function latencyQuantile(latency: number[], q: number): number | null {
  const total = latency.reduce((sum, count) => sum + count, 0)
  if (total === 0) return null
  let seen = 0
  for (const [index, count] of latency.entries()) {
    seen += count
    if (seen >= q * total) return LATENCY_BOUNDS_MS[index] ?? Number.POSITIVE_INFINITY
  }
  return Number.POSITIVE_INFINITY
}

// PSI = Σ (a − e) · ln(a / e) over the bins' shares, with empty bins smoothed
// so one unseen class does not make it infinite. Under 0.1 is stable, 0.1 to
// 0.2 a moderate shift, above 0.2 a significant one (the usual reading).
export function populationStabilityIndex(expected: Record<string, number> | number[], actual: Record<string, number> | number[]): number {
  const keys = Array.isArray(expected)
    ? expected.map((_, index) => String(index))
    : [...new Set([...Object.keys(expected), ...Object.keys(actual as Record<string, number>)])]
  const count = (source: Record<string, number> | number[], key: string) => (Array.isArray(source) ? (source[Number(key)] ?? 0) : (source[key] ?? 0))
  const totalExpected = keys.reduce((sum, key) => sum + count(expected, key), 0)
  const totalActual = keys.reduce((sum, key) => sum + count(actual, key), 0)
  if (totalExpected === 0 || totalActual === 0) return 0
  const smoothing = 0.5
  let psi = 0
  for (const key of keys) {
    const e = (count(expected, key) + smoothing) / (totalExpected + smoothing * keys.length)
    const a = (count(actual, key) + smoothing) / (totalActual + smoothing * keys.length)
    psi += (a - e) * Math.log(a / e)
  }
  return psi
}
