import { lt } from 'drizzle-orm'
import { expireUploads } from '../artifacts/multipart-upload.ts'
import { drainSinkOutbox, resendStaleSinkDeliveries } from '../billing/sink-deliveries.ts'
import { database } from '../db/client.ts'
import { idempotencyRecords, requestObservations } from '../db/schema.ts'
import type { Env } from '../env.ts'
import { requeueAttempt } from '../jobs/job-transitions.ts'
import { resendUntriedWebhookDeliveries } from '../webhooks/deliver-webhook.ts'
import { IDEMPOTENCY_TTL_MS } from '../middleware/idempotency.ts'
import { purgeRunnerSignatures } from '../middleware/runner-signature.ts'
import { readSettings } from '../settings.ts'
import { replayUsageDeadLetters } from '../usage/replay-usage-dead-letters.ts'

// A queued job with no dispatch activity for this long has lost its queue
// message (a send that failed after the row was written): send it again. A
// duplicate message is harmless, the claim is conditional.
const ORPHANED_QUEUED_MS = 10 * 60 * 1000

// A request observation is kept only to recognise a redelivery of it; queue
// retries are over long before this. Its rollup stays.
const OBSERVATION_TTL_MS = 2 * 86_400_000

// Runners that stopped heartbeating are lost; their running jobs go back to
// the queue for a new attempt. A draining runner keeps its jobs: it is
// finishing them, or will release them. Runs on every runner heartbeat and from cron,
// so a job whose runner died is picked up as soon as any runner is alive.
export async function sweepLostRunners(env: Env, now = Date.now()): Promise<number> {
  const { runnerTtlSeconds } = readSettings(env)
  await env.DB.prepare(`UPDATE runners SET status = 'lost' WHERE status IN ('active', 'draining') AND heartbeat_at < ?1`)
    .bind(now - runnerTtlSeconds * 1000)
    .run()
  const { results } = await env.DB.prepare(
    `SELECT jobs.id, jobs.attempts, jobs.runner_id FROM jobs JOIN runners ON runners.id = jobs.runner_id
      WHERE jobs.status = 'running' AND runners.status IN ('lost', 'replaced')`,
  ).all<{ id: string; attempts: number; runner_id: string }>()
  let requeued = 0
  for (const job of results) {
    if (await requeueAttempt(env, job.id, job.attempts, `runner ${job.runner_id} was lost`)) requeued++
  }
  return requeued
}

export async function resendOrphanedJobs(env: Env, now = Date.now()): Promise<void> {
  const { results } = await env.DB.prepare(`SELECT id FROM jobs WHERE status = 'queued' AND updated_at < ?1 LIMIT 100`)
    .bind(now - ORPHANED_QUEUED_MS)
    .all<{ id: string }>()
  for (const job of results) {
    await env.DB.prepare('UPDATE jobs SET updated_at = ?2 WHERE id = ?1').bind(job.id, now).run()
    await env.JOBS.send({ job_id: job.id })
  }
}

// The cron trigger's work.
export async function scheduledMaintenance(env: Env, now = Date.now()): Promise<void> {
  await sweepLostRunners(env, now)
  await resendOrphanedJobs(env, now)
  await expireUploads(env, now)
  await drainSinkOutbox(env, now)
  await resendStaleSinkDeliveries(env, now)
  await resendUntriedWebhookDeliveries(env, now)
  await replayUsageDeadLetters(env, { now })
  const db = database(env)
  await purgeRunnerSignatures(db, now)
  await db.delete(idempotencyRecords).where(lt(idempotencyRecords.createdAt, now - IDEMPOTENCY_TTL_MS)).run()
  await db.delete(requestObservations).where(lt(requestObservations.timestamp, now - OBSERVATION_TTL_MS)).run()
}
