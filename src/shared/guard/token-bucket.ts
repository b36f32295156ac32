// A token bucket refilled continuously at `capacity` per `periodMs`: it
// allows bursts up to the capacity and the rate on average. Pure arithmetic
// on (tokens, updatedAt), so the Durable Object can keep buckets in SQLite
// and decide exactly.

export type TokenBucket = { tokens: number; updatedAt: number }
export type BucketDecision = { allowed: boolean; remaining: number; retryAfterMs: number; bucket: TokenBucket }

export function refill(bucket: TokenBucket | undefined, capacity: number, periodMs: number, now: number): TokenBucket {
  if (!bucket) return { tokens: capacity, updatedAt: now }
  const elapsed = Math.max(0, now - bucket.updatedAt)
  return { tokens: Math.min(capacity, bucket.tokens + (elapsed * capacity) / periodMs), updatedAt: now }
}

// Takes `amount` if the bucket holds it; otherwise takes nothing and says
// when it will. An amount larger than the capacity can never pass, and says
// so with a wait of a whole period (the caller should answer 4xx, not wait).
export function take(bucket: TokenBucket | undefined, capacity: number, periodMs: number, amount: number, now: number): BucketDecision {
  const current = refill(bucket, capacity, periodMs, now)
  if (current.tokens >= amount) {
    const next = { tokens: current.tokens - amount, updatedAt: now }
    return { allowed: true, remaining: Math.floor(next.tokens), retryAfterMs: 0, bucket: next }
  }
  const missing = Math.min(amount, capacity) - current.tokens
  return { allowed: false, remaining: Math.floor(current.tokens), retryAfterMs: Math.ceil(Math.max(missing, 0) * (periodMs / capacity)) || periodMs, bucket: current }
}

// Gives back what was taken and not used (reserve-then-reconcile), never
// above the capacity.
export function giveBack(bucket: TokenBucket | undefined, capacity: number, periodMs: number, amount: number, now: number): TokenBucket {
  const current = refill(bucket, capacity, periodMs, now)
  return { tokens: Math.min(capacity, Math.max(-capacity, current.tokens + amount)), updatedAt: now }
}
