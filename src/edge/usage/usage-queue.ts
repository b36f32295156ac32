import type { RequestObservation } from '../../shared/traffic/request-observation.ts'
import type { UsageEvent } from '../../shared/usage-event.ts'
import { readUsageMessage, type RequestUsage } from '../../shared/usage-message.ts'
import { database } from '../db/client.ts'
import { usageEvents } from '../db/schema.ts'
import type { Env } from '../env.ts'
import { recordObservations } from './record-observations.ts'

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

// Sends usage off the critical path: one event, one observation, or a
// request's whole usage. If the queue refuses it, its contents go straight
// into D1: ids (the event's, the request's) make either path count them once.
export async function sendUsageMessage(env: Pick<Env, 'DB' | 'USAGE'>, message: UsageEvent | RequestObservation | RequestUsage): Promise<void> {
  try {
    // The binding is typed by single events; the consumer reads all three shapes.
    await (env.USAGE as Queue<unknown>).send(message)
  } catch (error) {
    const contents = readUsageMessage(message)
    if (!contents) throw error
    await recordUsageEvents(env, contents.events)
    await recordObservations(env, contents.observations)
  }
}
