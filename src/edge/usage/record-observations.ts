import type { RequestObservation } from '../../shared/traffic/request-observation.ts'
import { database } from '../db/client.ts'
import { requestObservations } from '../db/schema.ts'
import type { Env } from '../env.ts'

export async function recordObservations(env: Pick<Env, 'DB'>, observations: readonly RequestObservation[]): Promise<void> {
  if (observations.length === 0) return
  const db = database(env)
  const inserts = observations.map((o) =>
    db
      .insert(requestObservations)
      .values({
        requestId: o.request_id,
        tenantId: o.tenant_id,
        keyId: o.key_id,
        outcome: o.outcome,
        latencyBucket: o.latency_bucket,
        timestamp: o.timestamp,
      })
      .onConflictDoNothing(),
  )
  await db.batch(inserts as [(typeof inserts)[number], ...typeof inserts])
}
