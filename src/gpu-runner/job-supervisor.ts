import { setTimeout as sleep } from 'node:timers/promises'
import { jobResultSchemas, type JobType } from '../shared/job-types.ts'
import type { JobDispatch, JobResultReport } from '../shared/runner-wire.ts'
import type { ArtifactCache } from './artifact-cache.ts'
import type { ModelCache } from './inference/model-cache.ts'
import { EdgeRequestError, type EdgeClient } from './edge-client.ts'
import { JobError } from './job-error.ts'
import type { JobHandler, JobRegistry } from './job-registry.ts'
import { errorMessage, type Logger } from './logger.ts'
import { createProgressReporter, type ProgressReporter } from './progress-reporter.ts'

// The jobs running on this runner: starts them within capacity, runs each in
// the background, reports its result, and aborts it when the edge cancels it,
// reassigns it or the runner shuts down. An aborted job reports nothing: the
// edge has already moved on, or (on shutdown) gets the job released instead.

export type AbortKind = 'cancelled' | 'stale' | 'superseded' | 'shutdown'

// `outdated`: this runner already runs a later attempt of the same job.
export type StartOutcome = 'started' | 'duplicate' | 'full' | 'outdated'

export type RunningJobRef = { job_id: string; attempt: number }

export type JobSupervisor = {
  readonly capacity: number
  readonly inFlight: number
  running(): RunningJobRef[]
  // `params` must already be valid for the dispatch's type.
  start(dispatch: JobDispatch, params: unknown): StartOutcome
  cancel(jobId: string, attempt?: number): boolean
  abortStale(jobs: RunningJobRef[]): void
  // Resolves true once nothing runs, false if the time ran out first.
  waitForIdle(timeoutMs: number): Promise<boolean>
  // Aborts what still runs and hands each job back to the edge.
  releaseAll(reason: string): Promise<void>
}

export type JobSupervisorOptions = {
  capacity: number
  registry: JobRegistry
  edge: EdgeClient
  cache: ArtifactCache
  // Loaded inference models, for jobs that run them (batch inference).
  models?: ModelCache
  logger: Logger
  progressIntervalMs?: number
  // Pause between rounds of delivering a result while the edge is unreachable.
  redeliverMs?: number
  // Fault injection: how long a job waits at each checkpoint (0: not at all).
  chaosStepDelayMs?: number
}

type RunningJob = {
  dispatch: JobDispatch
  params: unknown
  controller: AbortController
  abortKind: AbortKind | null
  logger: Logger
  progress: ProgressReporter
  settled: Promise<void>
}

const MAX_ERROR_MESSAGE = 4000

function failure(attempt: number, message: string, code: string): JobResultReport {
  return { attempt, status: 'failed', error: { message: message.slice(0, MAX_ERROR_MESSAGE), code } }
}

export function createJobSupervisor(options: JobSupervisorOptions): JobSupervisor {
  const { edge, cache, registry } = options
  const jobs = new Map<string, RunningJob>()

  const abort = (entry: RunningJob, kind: AbortKind) => {
    if (entry.abortKind) return
    entry.abortKind = kind
    entry.controller.abort(new Error(`job ${kind}`))
  }

  const execute = async (entry: RunningJob): Promise<JobResultReport> => {
    const { dispatch, controller } = entry
    const handler = registry[dispatch.type] as JobHandler<JobType>
    try {
      const result = await handler({
        job: dispatch,
        params: entry.params as never,
        signal: controller.signal,
        reportProgress: entry.progress.update,
        checkpoint: () => (options.chaosStepDelayMs ? sleep(options.chaosStepDelayMs, undefined, { signal: controller.signal }) : Promise.resolve()),
        edge,
        cache,
        ...(options.models ? { models: options.models } : {}),
        logger: entry.logger,
      })
      const parsed = jobResultSchemas[dispatch.type].safeParse(result)
      if (!parsed.success) {
        return failure(dispatch.attempt, `job produced an invalid result: ${parsed.error.message}`, 'invalid_result')
      }
      return { attempt: dispatch.attempt, status: 'succeeded', result: parsed.data }
    } catch (error) {
      return failure(dispatch.attempt, errorMessage(error), error instanceof JobError ? error.code : 'job_failed')
    }
  }

  // A finished job keeps its slot, and stays listed in heartbeats, until the
  // edge has its result: the edge only requeues jobs of runners that stopped
  // heartbeating, so a result given up on would leave the job running forever.
  // Delivery ends when the edge takes the result, refuses it (4xx), or the job
  // is aborted (the edge reassigned it, or the runner releases it on shutdown).
  const deliver = async (entry: RunningJob, report: JobResultReport) => {
    const { dispatch, controller, logger } = entry
    for (;;) {
      try {
        await edge.reportResult(dispatch.job_id, report, controller.signal)
        return
      } catch (error) {
        if (controller.signal.aborted) return
        if (error instanceof EdgeRequestError && error.status !== null && error.status < 500) {
          logger.error('edge refused the result', { status: error.status, error: errorMessage(error) })
          return
        }
        logger.warn('result not delivered, trying again', { error: errorMessage(error) })
      }
      await sleep(options.redeliverMs ?? 5000, undefined, { signal: controller.signal }).catch(() => {})
    }
  }

  const run = async (entry: RunningJob) => {
    const { dispatch, controller, logger, progress } = entry
    const startedAt = Date.now()
    logger.info('job started')

    const report = await execute(entry)
    if (!controller.signal.aborted) await progress.flush()
    if (controller.signal.aborted) {
      progress.stop()
      logger.info('job aborted', { reason: entry.abortKind })
      return
    }
    const fields = { status: report.status, duration_ms: Date.now() - startedAt }
    if (report.status === 'failed') logger.warn('job failed', { ...fields, code: report.error.code, error: report.error.message })
    else logger.info('job finished', fields)
    await deliver(entry, report)
  }

  return {
    capacity: options.capacity,
    get inFlight() {
      return jobs.size
    },
    running: () => Array.from(jobs.values(), ({ dispatch }) => ({ job_id: dispatch.job_id, attempt: dispatch.attempt })),
    start(dispatch, params) {
      const existing = jobs.get(dispatch.job_id)
      if (existing?.dispatch.attempt === dispatch.attempt) return 'duplicate'
      if (existing && existing.dispatch.attempt > dispatch.attempt) return 'outdated'
      // A later attempt of a job running here replaces it, so it takes no extra slot.
      if (!existing && jobs.size >= options.capacity) return 'full'
      if (existing) abort(existing, 'superseded')

      const controller = new AbortController()
      const logger = options.logger.child({ job_id: dispatch.job_id, attempt: dispatch.attempt, type: dispatch.type })
      const progress = createProgressReporter({
        attempt: dispatch.attempt,
        send: (report) => edge.reportProgress(dispatch.job_id, report, controller.signal),
        intervalMs: options.progressIntervalMs,
        logger,
      })
      const entry: RunningJob = {
        dispatch,
        params,
        controller,
        abortKind: null,
        logger,
        progress,
        settled: Promise.resolve(),
      }
      jobs.set(dispatch.job_id, entry)
      entry.settled = run(entry)
        .catch((error: unknown) => options.logger.error('job runner crashed', { job_id: dispatch.job_id, error: errorMessage(error) }))
        .finally(() => {
          if (jobs.get(dispatch.job_id) === entry) jobs.delete(dispatch.job_id)
        })
      return 'started'
    },
    cancel(jobId, attempt) {
      const entry = jobs.get(jobId)
      if (!entry || (attempt !== undefined && entry.dispatch.attempt !== attempt)) return false
      abort(entry, 'cancelled')
      return true
    },
    abortStale(stale) {
      for (const { job_id, attempt } of stale) {
        const entry = jobs.get(job_id)
        if (entry?.dispatch.attempt === attempt) abort(entry, 'stale')
      }
    },
    async waitForIdle(timeoutMs) {
      const deadline = Date.now() + timeoutMs
      while (jobs.size > 0) {
        const left = deadline - Date.now()
        if (left <= 0) return false
        const timeout = new AbortController()
        await Promise.race([
          Promise.all(Array.from(jobs.values(), (entry) => entry.settled)),
          sleep(left, undefined, { signal: timeout.signal }).catch(() => {}),
        ])
        timeout.abort()
      }
      return true
    },
    async releaseAll(reason) {
      const entries = Array.from(jobs.values())
      for (const entry of entries) abort(entry, 'shutdown')
      await Promise.all(
        entries.map(async ({ dispatch }) => {
          try {
            await edge.release(dispatch.job_id, { attempt: dispatch.attempt, reason })
            options.logger.info('job released', { job_id: dispatch.job_id, attempt: dispatch.attempt })
          } catch (error) {
            options.logger.error('job release failed', { job_id: dispatch.job_id, error: errorMessage(error) })
          }
        }),
      )
      await Promise.all(entries.map((entry) => entry.settled))
    },
  }
}
