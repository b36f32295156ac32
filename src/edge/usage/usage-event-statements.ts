import type { UsageEvent } from '../../shared/usage-event.ts'
import { insertOrIgnoreRows } from '../db/insert-rows.ts'

// A row of the ledger: a metered event, or an admin's correction of one.
export type LedgerEntry = UsageEvent & { kind?: 'usage' | 'correction'; reason?: string | null }

const EVENT_COLUMNS = ['id', 'tenant_id', 'key_id', 'meter', 'value', 'timestamp', 'request_id', 'recorded_at', 'kind', 'reason'] as const

// The statements that insert-or-ignore `entries` into the ledger (the event
// id makes a redelivery count once), for a batch that may write more in the
// same transaction; triggers roll the new rows up and fill the billing
// sinks' outbox.
export function usageEventStatements(db: D1Database, entries: readonly LedgerEntry[]): D1PreparedStatement[] {
  if (entries.length === 0) return []
  const recordedAt = Date.now()
  const rows = entries.map((entry) => [
    entry.id,
    entry.tenant_id,
    entry.key_id,
    entry.meter,
    entry.value,
    entry.timestamp,
    entry.request_id,
    recordedAt,
    entry.kind ?? 'usage',
    entry.reason ?? null,
  ])
  return insertOrIgnoreRows(db, 'usage_events', EVENT_COLUMNS, rows)
}
