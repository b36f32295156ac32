import type { RequestObservation } from '../../shared/traffic/request-observation.ts'
import type { UsageEvent } from '../../shared/usage-event.ts'
import { readUsageMessage, type RequestUsage } from '../../shared/usage-message.ts'
import { insertOrIgnoreRows } from '../db/insert-rows.ts'
import type { Env } from '../env.ts'
import { recordObservations } from './record-observations.ts'

export type LedgerEntry = UsageEvent & { kind?: 'usage' | 'correction'; reason?: string | null }

const EVENT_COLUMNS = ['id', 'tenant_id', 'key_id', 'meter', 'value', 'timestamp', 'request_id', 'recorded_at', 'kind', 'reason'] as const

// Insert-or-ignore into the ledger (the event id makes a redelivery count
// once), in one transaction; triggers roll the new rows up and fill the
// billing sinks' outbox.
export async function recordUsageEvents(env: Pick<Env, 'DB'>, events: readonly LedgerEntry[]): Promise<void> {
  if (events.length === 0) return
  const recordedAt = Date.now()
  const rows = events.map((event) => [
    event.id,
    event.tenant_id,
    event.key_id,
    event.meter,
    event.value,
    event.timestamp,
    event.request_id,
    recordedAt,
    event.kind ?? 'usage',
    event.reason ?? null,
  ])
  await env.DB.batch(insertOrIgnoreRows(env.DB, 'usage_events', EVENT_COLUMNS, rows))
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
