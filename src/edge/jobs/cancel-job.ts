import { signRunnerRequest } from '../../shared/runner-signature.ts'
import type { Env } from '../env.ts'
import { ApiError, notFound } from '../errors.ts'
import { adjustInFlight } from '../runners/runner-pool.ts'
import { emitJobFinished } from './job-events.ts'

// Tells the runner to stop a cancelled job. Best effort: if this call is lost,
// the runner's next heartbeat learns the job is stale and stops it anyway.
async function notifyRunner(env: Env, runnerId: string, jobId: string): Promise<void> {
  const runner = await env.DB.prepare('SELECT url FROM runners WHERE id = ?1').bind(runnerId).first<{ url: string }>()
  if (!runner || !env.MOAT_RUNNER_SECRET) return
  const url = new URL(`/jobs/${encodeURIComponent(jobId)}/cancel`, runner.url)
  const headers = await signRunnerRequest({ secret: env.MOAT_RUNNER_SECRET, method: 'POST', path: url.pathname, body: '' })
  await fetch(url, { method: 'POST', headers, body: '', signal: AbortSignal.timeout(5000) }).catch(() => undefined)
}

export async function cancelJob(env: Env, tenantId: string, jobId: string, waitUntil: (promise: Promise<unknown>) => void) {
  const now = Date.now()
  const cancelled = await env.DB.prepare(
    `UPDATE jobs SET status = 'cancelled', finished_at = ?3, updated_at = ?3
      WHERE id = ?1 AND tenant_id = ?2 AND status IN ('queued', 'running')
      RETURNING runner_id, status`,
  )
    .bind(jobId, tenantId, now)
    .first<{ runner_id: string | null }>()
  if (cancelled) {
    await emitJobFinished(env, jobId)
    if (cancelled.runner_id) {
      await adjustInFlight(env, cancelled.runner_id, -1).run()
      waitUntil(notifyRunner(env, cancelled.runner_id, jobId))
    }
    return
  }
  const existing = await env.DB.prepare('SELECT status FROM jobs WHERE id = ?1 AND tenant_id = ?2')
    .bind(jobId, tenantId)
    .first<{ status: string }>()
  if (!existing) throw notFound('job', 'id')
  throw new ApiError(409, `Job ${jobId} is already ${existing.status}`, { code: 'job_finished' })
}
