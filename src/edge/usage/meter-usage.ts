import type { Context } from 'hono'
import type { MeterName } from '../../shared/meters.ts'
import { buildUsageEvent } from '../../shared/usage-event.ts'
import type { AppEnv } from '../env.ts'
import { quotaStub } from '../middleware/enforce-quota.ts'
import { addUsageEvent } from './request-usage.ts'

// Meters one unit of `meter` for the current request. A request meters each
// meter at most once (the event id is per request and meter): sum first.
// A meter the tenant has a limit on also counts towards that limit (the
// `requests` limit is taken when the request is admitted).
export async function meterUsage(c: Context<AppEnv>, meter: MeterName, value: number): Promise<void> {
  const auth = c.get('auth')
  const event = await buildUsageEvent({
    tenantId: auth.tenantId,
    keyId: auth.keyId,
    requestId: c.get('requestId'),
    meter,
    value,
  })
  addUsageEvent(c, event)
  const limited = meter === 'requests' ? [] : auth.limits.filter((limit) => limit.meter === meter)
  if (limited.length > 0) c.executionCtx.waitUntil(quotaStub(c.env, auth.tenantId).record(limited, value, event.timestamp))
}
