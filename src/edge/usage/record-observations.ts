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

// Sent after the response, like usage events; if the queue refuses, written
// straight to D1 (still after the response): the request id makes either path
// count it once.
export async function sendObservation(env: Pick<Env, 'DB' | 'USAGE'>, observation: RequestObservation): Promise<void> {
  try {
    // The binding is typed by its billable messages, which is what every
    // reader of it but the consumer cares about; the consumer tells the two apart.
    await (env.USAGE as Queue<unknown>).send(observation)
  } catch {
    await recordObservations(env, [observation])
  }
}
