import type { MiddlewareHandler } from 'hono'
import type { AppEnv } from '../env.ts'
import { isBilledRequest } from '../usage/billed-request.ts'
import { meterUsage } from '../usage/meter-usage.ts'

// Every authenticated request that was served is one unit of `requests`.
export function meterRequests(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    await next()
    if (!isBilledRequest(c)) return
    await meterUsage(c, 'requests', 1)
  }
}
