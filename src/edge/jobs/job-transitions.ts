import type { JobType } from '../../shared/job-types.ts'
import type { Env } from '../env.ts'
import { adjustInFlight } from '../runners/runner-pool.ts'
import { attemptGuard, jobEffects, resultIsValid } from './job-effects.ts'
import { emitJobFinished } from './job-events.ts'
import { buildUsageEvent } from '../../shared/usage-event.ts'
import { sendUsageMessage } from '../usage/usage-queue.ts'
import type { ResultQueueMessage } from './job-messages.ts'

// Job states only move forward: queued → running → succeeded | failed |
// cancelled. The one way back is running → queued when the runner gives the
// job up (release) or is lost (the sweep); the attempt number then grows, and
// every runner report names its attempt, so a report from a runner that lost
// the job matches nothing. Each transition is one conditional UPDATE: a
// duplicate message finds the state already moved and changes nothing.

export type FailInput = { jobId: string; attempt: number | null; code: string; message: string }

// Fails a running attempt, or a queued job when `attempt` is null (the
// dead-letter queue gave up dispatching it).
export async function failJob(env: Env, input: FailInput): Promise<boolean> {
  const now = Date.now()
  const error = JSON.stringify({ message: input.message, code: input.code })
  const statement =
    input.attempt === null
      ? env.DB.prepare(
          `UPDATE jobs SET status = 'failed', error = ?2, finished_at = ?3, updated_at = ?3
            WHERE id = ?1 AND status = 'queued' RETURNING runner_id`,
        ).bind(input.jobId, error, now)
      : env.DB.prepare(
          `UPDATE jobs SET status = 'failed', error = ?2, finished_at = ?3, updated_at = ?3
            WHERE id = ?1 AND status = 'running' AND attempts = ?4 RETURNING runner_id`,
        ).bind(input.jobId, error, now, input.attempt)
  const changed = await statement.first<{ runner_id: string | null }>()
  if (!changed) return false
  if (changed.runner_id) await adjustInFlight(env, changed.runner_id, -1).run()
  await emitJobFinished(env, input.jobId)
  return true
}

type JobRecord = { id: string; type: string; params: string; status: string; attempts: number; runner_id: string | null }

async function applyProgress(env: Env, message: Extract<ResultQueueMessage, { kind: 'progress' }>): Promise<void> {
  const { report } = message
  await env.DB.prepare(
    `UPDATE jobs SET progress_done = ?3, progress_total = ?4, progress_unit = ?5, updated_at = ?6
      WHERE id = ?1 AND attempts = ?2 AND status = 'running'
        AND (progress_done <= ?3 OR progress_unit IS NOT ?5)`,
  )
    .bind(message.job_id, report.attempt, report.done, report.total, report.unit, Date.now())
    .run()
}

async function applyResult(env: Env, job: JobRecord, message: Extract<ResultQueueMessage, { kind: 'result' }>): Promise<void> {
  const { report } = message
  if (report.status === 'failed') {
    await failJob(env, { jobId: job.id, attempt: report.attempt, code: report.error.code, message: report.error.message })
    return
  }
  if (!resultIsValid(job.type, report.result)) {
    await failJob(env, {
      jobId: job.id,
      attempt: report.attempt,
      code: 'invalid_result',
      message: `The runner's result does not match the '${job.type}' result schema`,
    })
    return
  }
  const now = Date.now()
  const guard = attemptGuard(job.id, report.attempt)
  const effects = jobEffects[job.type as JobType](env, { params: JSON.parse(job.params) }, report.result, guard)
  const runnerRelease = job.runner_id
    ? [env.DB.prepare(`UPDATE runners SET in_flight = MAX(in_flight - 1, 0) WHERE id = ? AND ${guard.sql}`).bind(job.runner_id, ...guard.args)]
    : []
  const results = await env.DB.batch([
    ...effects,
    ...runnerRelease,
    env.DB.prepare(
      `UPDATE jobs SET status = 'succeeded', result = ?3, finished_at = ?4, updated_at = ?4,
          progress_done = COALESCE(progress_total, progress_done)
        WHERE id = ?1 AND attempts = ?2 AND status = 'running'`,
    ).bind(job.id, report.attempt, JSON.stringify(report.result), now),
  ])
  if ((results.at(-1)?.meta.changes ?? 0) === 0) return
  await meterRunnerTime(env, job.id, report.attempt)
  await emitJobFinished(env, job.id)
}

// A succeeded job bills the runner time of its successful attempt, once:
// the event id derives from the job and attempt, and the value from the times
// on the job's row, so billing it again after a crash changes nothing.
async function meterRunnerTime(env: Env, jobId: string, attempt: number): Promise<void> {
  const job = await env.DB.prepare('SELECT tenant_id, key_id, started_at, finished_at FROM jobs WHERE id = ?1')
    .bind(jobId)
    .first<{ tenant_id: string; key_id: string | null; started_at: number | null; finished_at: number | null }>()
  if (!job || job.finished_at === null) return
  const seconds = Math.max(1, Math.ceil((job.finished_at - (job.started_at ?? job.finished_at)) / 1000))
  const event = await buildUsageEvent(
    { tenantId: job.tenant_id, keyId: job.key_id, requestId: `job:${jobId}:${attempt}`, meter: 'runner.seconds', value: seconds },
    job.finished_at,
  )
  await sendUsageMessage(env, event)
}

// Running → queued for a new attempt, then onto the jobs queue. Only the
// caller whose update moved the job sends it, so a job is queued once.
export async function requeueAttempt(env: Env, jobId: string, attempt: number, reason: string): Promise<boolean> {
  const moved = await env.DB.prepare(
    `UPDATE jobs SET status = 'queued', runner_id = NULL, last_dispatch_error = ?3, updated_at = ?4
      WHERE id = ?1 AND attempts = ?2 AND status = 'running' RETURNING runner_id`,
  )
    .bind(jobId, attempt, reason, Date.now())
    .first<{ runner_id: string | null }>()
  if (!moved) return false
  if (moved.runner_id) await adjustInFlight(env, moved.runner_id, -1).run()
  await env.JOBS.send({ job_id: jobId })
  return true
}

// `redelivered`: the queue gives the message again after a consumer failed
// (its attempts are above 1), rather than the runner sending it twice.
export async function applyRunnerReport(env: Env, message: ResultQueueMessage, redelivered = false): Promise<void> {
  if (message.kind === 'progress') return applyProgress(env, message)
  const job = await env.DB.prepare('SELECT id, type, params, status, attempts, runner_id FROM jobs WHERE id = ?1')
    .bind(message.job_id)
    .first<JobRecord>()
  if (!job || job.attempts !== message.report.attempt) return
  if (job.status === 'running') {
    if (message.kind === 'result') return applyResult(env, job, message)
    await requeueAttempt(env, job.id, message.report.attempt, `released by runner: ${message.report.reason}`)
    return
  }
  if (redelivered) await redoFollowUps(env, job, message)
}

// A report that comes back (its message retried after the consumer failed)
// may find its transition already committed while what follows the commit
// never happened: billing the runner time and the job's webhook event after a
// result, the queue message after a release. Each is idempotent, so they are
// done again; a duplicate that merely arrives twice changes nothing.
async function redoFollowUps(env: Env, job: JobRecord, message: Exclude<ResultQueueMessage, { kind: 'progress' }>): Promise<void> {
  if (message.kind === 'release') {
    // The claim is conditional: a second message for a queued job is harmless.
    if (job.status === 'queued') await env.JOBS.send({ job_id: job.id })
    return
  }
  if (job.status !== 'succeeded' && job.status !== 'failed') return
  if (job.status === 'succeeded') await meterRunnerTime(env, job.id, message.report.attempt)
  await emitJobFinished(env, job.id, { requeueUntried: true })
}
