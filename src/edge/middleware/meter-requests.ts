import type { MiddlewareHandler } from 'hono'
import type { AppEnv } from '../env.ts'
import { meterUsage } from '../usage/meter-usage.ts'

// Every authenticated request that was served is one unit of `requests`.
// Faults (5xx) and refusals for a limit (429) are not billed, and an
// idempotent replay was billed the first time.
export function meterRequests(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    await next()
    if (c.res.status >= 500 || c.res.status === 429 || c.get('idempotentReplay')) return
    await meterUsage(c, 'requests', 1)
  }
}
