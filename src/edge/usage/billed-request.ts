import type { Context } from 'hono'
import type { AppEnv } from '../env.ts'

// Whether a finished request is one unit of `requests`: faults (5xx) and
// refusals for a limit (429) are not billed, and an idempotent replay was
// billed the first time. The metering middleware bills by this rule and a
// tenant's plan gives back by it, so the two never disagree.
export function isBilledRequest(c: Context<AppEnv>): boolean {
  return c.res.status < 500 && c.res.status !== 429 && !c.get('idempotentReplay')
}
