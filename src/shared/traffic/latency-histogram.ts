// Request latency kept as a histogram of fixed logarithmic buckets, so that
// hourly rollups can be added together and a percentile read from any sum of
// them. Bucket 0 holds everything under 1 ms (a Worker's clock only advances
// on I/O, so pure compute reads as 0 ms); bucket k ≥ 1 holds
// [2^((k-1)/4), 2^(k/4)) ms, a quarter of an octave; the last bucket is open
// above. Reporting a bucket's geometric middle is within a factor of
// 2^(1/8) (about ±9 %) of any latency inside it.
export const BUCKETS_PER_OCTAVE = 4
export const LATENCY_BUCKETS = 81
const LAST = LATENCY_BUCKETS - 1

export function latencyBucket(ms: number): number {
  if (!(ms >= 1)) return 0
  const k = 1 + Math.floor(BUCKETS_PER_OCTAVE * Math.log2(ms))
  // log2 of a value just under a power of two can round up to it: the bounds
  // are the authority, so step back when the estimate overshot.
  if (k <= LAST && ms < bucketLow(k)) return k - 1
  if (k < LAST && ms >= bucketLow(k + 1)) return k + 1
  return Math.min(k, LAST)
}

// The lower bound of bucket k in ms (0 for bucket 0).
export function bucketLow(k: number): number {
  return k === 0 ? 0 : 2 ** ((k - 1) / BUCKETS_PER_OCTAVE)
}

// What a bucket reports: its geometric middle (0.5 ms for bucket 0, the lower
// bound for the open last bucket).
export function bucketValue(k: number): number {
  if (k === 0) return 0.5
  if (k === LAST) return bucketLow(k)
  return 2 ** ((k - 0.5) / BUCKETS_PER_OCTAVE)
}

export type LatencyQuantile = { bucket: number; ms: number; low: number; high: number | null }

// The q-quantile (0 < q ≤ 1) of the latencies counted in `counts` (bucket →
// count): the bucket that holds the ⌈q·n⌉-th smallest latency. null when
// nothing was counted.
export function latencyQuantile(counts: ReadonlyMap<number, number>, q: number): LatencyQuantile | null {
  let total = 0
  for (const count of counts.values()) total += count
  if (total === 0) return null
  const rank = Math.max(1, Math.ceil(q * total))
  let seen = 0
  for (const bucket of [...counts.keys()].sort((a, b) => a - b)) {
    seen += counts.get(bucket) ?? 0
    if (seen >= rank) {
      return { bucket, ms: bucketValue(bucket), low: bucketLow(bucket), high: bucket === LAST ? null : bucketLow(bucket + 1) }
    }
  }
  return null
}
