import { METERS, type MeterName } from '../../shared/meters.ts'
import { DAY_MS, HOUR_MS, splitUsageRange, type RangePiece } from '../../shared/billing/usage-range.ts'
import type { Env } from '../env.ts'

// Totals are always per meter (units differ); these split them further.
export const GROUP_DIMENSIONS = ['meter', 'key', 'day', 'hour'] as const
export type GroupDimension = (typeof GROUP_DIMENSIONS)[number]

export type UsageRow = {
  meter: string
  unit: string
  key_id?: string | null
  day?: string
  hour?: string
  value: number
  events: number
}

type Partial = { meter: string; key_id: string; bucket: number; value: number; events: number }

// SQL for one piece of the range. Rollups store '' for "no key"; the raw
// ledger stores NULL, so both read back as ''.
function pieceQuery(env: Pick<Env, 'DB'>, tenantId: string, piece: RangePiece, period: number | null): D1PreparedStatement {
  const bucket = (column: string) => (period === null ? '0' : `${column} - (${column} % ${period})`)
  if (piece.source === 'raw') {
    return env.DB.prepare(
      `SELECT meter, COALESCE(key_id, '') AS key_id, ${bucket('timestamp')} AS bucket, SUM(value) AS value, COUNT(*) AS events
        FROM usage_events WHERE tenant_id = ?1 AND timestamp >= ?2 AND timestamp < ?3
        GROUP BY meter, COALESCE(key_id, ''), bucket`,
    ).bind(tenantId, piece.start, piece.end)
  }
  return env.DB.prepare(
    `SELECT meter, key_id, ${bucket('bucket_start')} AS bucket, SUM(value) AS value, SUM(events) AS events
      FROM usage_rollups WHERE tenant_id = ?1 AND granularity = ?2 AND bucket_start >= ?3 AND bucket_start < ?4
      GROUP BY meter, key_id, bucket`,
  ).bind(tenantId, piece.source, piece.start, piece.end)
}

// Totals for [start, end), grouped as asked. Exact: every event is counted
// in exactly one piece of the range (see splitUsageRange), and the rollups
// are kept in the same transaction as the events.
export async function usageReport(
  env: Pick<Env, 'DB'>,
  tenantId: string,
  range: { start: number; end: number },
  groupBy: readonly GroupDimension[],
): Promise<UsageRow[]> {
  const period = groupBy.includes('hour') ? HOUR_MS : groupBy.includes('day') ? DAY_MS : null
  const pieces = splitUsageRange(range.start, range.end, { hourly: period === HOUR_MS })
  if (pieces.length === 0) return []
  const results = await env.DB.batch<Partial>(pieces.map((piece) => pieceQuery(env, tenantId, piece, period)))
  const totals = new Map<string, UsageRow>()
  for (const result of results) {
    for (const part of result.results) {
      const row: UsageRow = { meter: part.meter, unit: METERS[part.meter as MeterName]?.unit ?? 'unit', value: 0, events: 0 }
      if (groupBy.includes('key')) row.key_id = part.key_id === '' ? null : part.key_id
      if (groupBy.includes('day')) row.day = new Date(part.bucket).toISOString().slice(0, 10)
      if (groupBy.includes('hour')) row.hour = new Date(part.bucket).toISOString().slice(0, 13) + ':00:00Z'
      const id = JSON.stringify([row.meter, row.key_id, row.day, row.hour])
      const total = totals.get(id) ?? row
      total.value += part.value
      total.events += part.events
      totals.set(id, total)
    }
  }
  return [...totals.values()].sort(
    (a, b) =>
      (a.day ?? a.hour ?? '').localeCompare(b.day ?? b.hour ?? '') || a.meter.localeCompare(b.meter) || String(a.key_id ?? '').localeCompare(String(b.key_id ?? '')),
  )
}
