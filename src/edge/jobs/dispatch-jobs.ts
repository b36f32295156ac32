import { backoffSeconds } from '../../shared/backoff.ts'
import { signRunnerRequest } from '../../shared/runner-signature.ts'
import type { JobDispatch } from '../../shared/runner-wire.ts'
import type { Env } from '../env.ts'
import { adjustInFlight, pickRunner, type RunnerRow } from '../runners/runner-pool.ts'
import { readSettings } from '../settings.ts'
import { jobQueueMessageSchema, type JobQueueMessage } from './job-messages.ts'
import { recordDeadLetter } from '../queues/dead-letters.ts'
import { failJob } from './job-transitions.ts'

type ClaimedJob = { id: string; tenant_id: string; type: string; params: string; attempts: number }

type DispatchOutcome =
  | { kind: 'accepted' }
  | { kind: 'done' }
  | { kind: 'retry'; reason: string }

// Claims the queued job for one attempt on `runner`. The conditional update is
// the lock: a duplicate message, a cancelled job or a job already running
// matches nothing.
// The attempt's start is set when the runner accepts it: until then it is
// null, which tells a dispatch that never finished (see recoverInterrupted).
async function claimJob(env: Env, jobId: string, runner: RunnerRow, now: number): Promise<ClaimedJob | null> {
  const claimed = await env.DB.prepare(
    `UPDATE jobs SET status = 'running', attempts = attempts + 1, runner_id = ?2, started_at = NULL, updated_at = ?3
      WHERE id = ?1 AND status = 'queued'
      RETURNING id, tenant_id, type, params, attempts`,
  )
    .bind(jobId, runner.id, now)
    .first<ClaimedJob>()
  if (claimed) await adjustInFlight(env, runner.id, 1).run()
  return claimed
}

// Puts a job whose dispatch failed back in the queue state, unless something
// else (a cancel) moved it meanwhile.
async function unclaimJob(env: Env, job: ClaimedJob, runner: RunnerRow, reason: string): Promise<void> {
  await env.DB.batch([
    env.DB.prepare(
      `UPDATE jobs SET status = 'queued', runner_id = NULL, last_dispatch_error = ?3, updated_at = ?4
        WHERE id = ?1 AND attempts = ?2 AND status = 'running'`,
    ).bind(job.id, job.attempts, reason, Date.now()),
    adjustInFlight(env, runner.id, -1),
  ])
}

async function postToRunner(env: Env, runner: RunnerRow, dispatch: JobDispatch, timeoutMs: number): Promise<Response> {
  const body = JSON.stringify(dispatch)
  const url = new URL('/jobs', runner.url)
  const headers = await signRunnerRequest({ secret: env.MOAT_RUNNER_SECRET ?? '', method: 'POST', path: url.pathname, body })
  return fetch(url, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(timeoutMs),
  })
}

async function describeRefusal(response: Response): Promise<string> {
  const text = (await response.text().catch(() => '')).slice(0, 300)
  return `runner answered ${response.status}${text ? `: ${text}` : ''}`
}

type JobState = { id: string; type: string; status: string; attempts: number; started_at: number | null; updated_at: number }

// A dispatch that failed between claiming the job and hearing the runner's
// answer (the consumer threw: D1 failed, the isolate went) leaves the job
// running on a runner that may never have seen it, and its redelivered
// message would find the job not queued and stop there: the job would stay
// running forever. A redelivered message that finds its job claimed, never
// accepted, and older than the runner timeout (so no dispatch is still
// waiting on the runner) puts it back. If the runner did accept it after all,
// the next attempt supersedes that one, whose reports no longer count.
async function recoverInterrupted(env: Env, job: JobState, timeoutMs: number, now: number): Promise<boolean> {
  if (job.status !== 'running' || job.started_at !== null || job.updated_at >= now - timeoutMs) return false
  // The runner's in-flight count is left to its next heartbeat, which reports it.
  const { meta } = await env.DB.prepare(
    `UPDATE jobs SET status = 'queued', runner_id = NULL, last_dispatch_error = 'the dispatch was interrupted', updated_at = ?3
      WHERE id = ?1 AND attempts = ?2 AND status = 'running' AND started_at IS NULL`,
  )
    .bind(job.id, job.attempts, now)
    .run()
  return meta.changes > 0
}

// `redelivered`: the queue gives the message again after the consumer failed.
export async function dispatchJob(env: Env, message: JobQueueMessage, now = Date.now(), redelivered = false): Promise<DispatchOutcome> {
  const settings = readSettings(env)
  const job = await env.DB.prepare('SELECT id, type, status, attempts, started_at, updated_at FROM jobs WHERE id = ?1')
    .bind(message.job_id)
    .first<JobState>()
  if (!job) return { kind: 'done' }
  if (job.status !== 'queued' && !(redelivered && (await recoverInterrupted(env, job, settings.runnerTimeoutMs, now)))) return { kind: 'done' }

  const runner = await pickRunner(env, job.type, settings.runnerTtlSeconds, now)
  if (!runner) {
    const reason = `no healthy runner with free capacity for '${job.type}'`
    await env.DB.prepare(`UPDATE jobs SET last_dispatch_error = ?2, updated_at = ?3 WHERE id = ?1 AND status = 'queued'`)
      .bind(job.id, reason, now)
      .run()
    return { kind: 'retry', reason }
  }

  const claimed = await claimJob(env, job.id, runner, now)
  if (!claimed) return { kind: 'done' }
  const dispatch: JobDispatch = {
    job_id: claimed.id,
    type: claimed.type as JobDispatch['type'],
    attempt: claimed.attempts,
    tenant_id: claimed.tenant_id,
    params: JSON.parse(claimed.params) as Record<string, unknown>,
  }

  let response: Response
  try {
    response = await postToRunner(env, runner, dispatch, settings.runnerTimeoutMs)
  } catch (error) {
    const reason = `runner ${runner.id} unreachable: ${error instanceof Error ? error.message : String(error)}`
    await unclaimJob(env, claimed, runner, reason)
    return { kind: 'retry', reason }
  }
  if (response.status === 202) {
    // The start of this attempt: a job that runs again after its runner was
    // lost bills the runner time of the attempt that finished it, not the
    // lost attempt's time and the wait until it was noticed.
    await env.DB.prepare(`UPDATE jobs SET started_at = ?3 WHERE id = ?1 AND attempts = ?2`)
      .bind(claimed.id, claimed.attempts, Date.now())
      .run()
    return { kind: 'accepted' }
  }
  const reason = await describeRefusal(response)
  // A runner that understood the job and refused it as invalid will refuse it
  // everywhere: fail now instead of retrying into the dead-letter queue.
  if (response.status === 400 || response.status === 422) {
    await adjustInFlight(env, runner.id, -1).run()
    await failJob(env, { jobId: claimed.id, attempt: claimed.attempts, code: 'rejected_by_runner', message: reason })
    return { kind: 'done' }
  }
  await unclaimJob(env, claimed, runner, reason)
  return { kind: 'retry', reason }
}

// Consumer of `moat-jobs`. Each message is acked or retried on its own, with
// a delay that doubles per attempt; after the queue's max_retries the message
// goes to `moat-jobs-dlq`, whose consumer fails the job with the last reason.
export async function consumeJobBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    const parsed = jobQueueMessageSchema.safeParse(message.body)
    if (!parsed.success) {
      await recordDeadLetter(env, batch.queue, message)
      message.ack()
      continue
    }
    try {
      const outcome = await dispatchJob(env, parsed.data, Date.now(), message.attempts > 1)
      if (outcome.kind === 'retry') message.retry({ delaySeconds: backoffSeconds(message.attempts) })
      else message.ack()
    } catch (error) {
      console.error(JSON.stringify({ level: 'error', queue: batch.queue, job_id: parsed.data.job_id, message: String(error) }))
      message.retry({ delaySeconds: backoffSeconds(message.attempts) })
    }
  }
}
