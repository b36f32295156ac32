import type { RequestObservation } from '../../shared/traffic/request-observation.ts'
import { insertOrIgnoreRows } from '../db/insert-rows.ts'
import type { Env } from '../env.ts'

const OBSERVATION_COLUMNS = ['request_id', 'tenant_id', 'key_id', 'outcome', 'latency_bucket', 'timestamp'] as const

// Insert-or-ignore (the request id makes a redelivery count once); a trigger
// rolls each new row up into traffic_rollups.
export async function recordObservations(env: Pick<Env, 'DB'>, observations: readonly RequestObservation[]): Promise<void> {
  if (observations.length === 0) return
  const rows = observations.map((o) => [o.request_id, o.tenant_id, o.key_id, o.outcome, o.latency_bucket, o.timestamp])
  await env.DB.batch(insertOrIgnoreRows(env.DB, 'request_observations', OBSERVATION_COLUMNS, rows))
}
