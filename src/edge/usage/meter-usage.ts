import type { Context } from 'hono'
import type { MeterName } from '../../shared/meters.ts'
import { buildUsageEvent, type UsageEvent } from '../../shared/usage-event.ts'
import { database } from '../db/client.ts'
import { usageEvents } from '../db/schema.ts'
import type { AppEnv, Env } from '../env.ts'
import { quotaStub } from '../middleware/enforce-quota.ts'
import { addUsageEvent } from './request-usage.ts'

export type LedgerEntry = UsageEvent & { kind?: 'usage' | 'correction'; reason?: string | null }

export async function recordUsageEvents(env: Pick<Env, 'DB'>, events: readonly LedgerEntry[]): Promise<void> {
  if (events.length === 0) return
  const db = database(env)
  const recordedAt = Date.now()
  const inserts = events.map((event) =>
    db
      .insert(usageEvents)
      .values({
        id: event.id,
        tenantId: event.tenant_id,
        keyId: event.key_id,
        meter: event.meter,
        value: event.value,
        timestamp: event.timestamp,
        requestId: event.request_id,
        recordedAt,
        kind: event.kind ?? 'usage',
        reason: event.reason ?? null,
      })
      .onConflictDoNothing(),
  )
  await db.batch(inserts as [(typeof inserts)[number], ...typeof inserts])
}

// Sends one usage event off the critical path. If the queue refuses it, the
// event goes straight into the table: the id makes either path count it once.
export async function sendUsageEvent(env: Pick<Env, 'DB' | 'USAGE'>, event: UsageEvent): Promise<void> {
  try {
    await env.USAGE.send(event)
  } catch {
    await recordUsageEvents(env, [event])
  }
}

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
