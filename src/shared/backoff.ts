export type BackoffOptions = { baseSeconds?: number; maxSeconds?: number }

// Delay before retry number `attempt` (1 = the first retry): doubling from the
// base, capped, so a busy or absent runner is asked less and less often.
export function backoffSeconds(attempt: number, options: BackoffOptions = {}): number {
  const base = options.baseSeconds ?? 1
  const max = options.maxSeconds ?? 60
  const exponent = Math.max(0, Math.min(attempt - 1, 30))
  return Math.min(max, base * 2 ** exponent)
}
