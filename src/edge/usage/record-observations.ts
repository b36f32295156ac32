import type { RequestObservation } from '../../shared/traffic/request-observation.ts'
import { insertOrIgnoreRows } from '../db/insert-rows.ts'

const OBSERVATION_COLUMNS = ['request_id', 'tenant_id', 'key_id', 'outcome', 'latency_bucket', 'timestamp'] as const

// The statements that insert-or-ignore `observations` (the request id makes a
// redelivery count once); a trigger rolls each new row up into
// traffic_rollups.
export function observationStatements(db: D1Database, observations: readonly RequestObservation[]): D1PreparedStatement[] {
  if (observations.length === 0) return []
  const rows = observations.map((o) => [o.request_id, o.tenant_id, o.key_id, o.outcome, o.latency_bucket, o.timestamp])
  return insertOrIgnoreRows(db, 'request_observations', OBSERVATION_COLUMNS, rows)
}
