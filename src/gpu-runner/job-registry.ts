import type { z } from 'zod'
import { JOB_TYPES, jobParamsSchemas, jobResultSchemas, type JobType } from '../shared/job-types.ts'
import type { JobDispatch } from '../shared/runner-wire.ts'
import type { ArtifactCache } from './artifact-cache.ts'
import type { ModelCache } from './inference/model-cache.ts'
import { batchInference } from './jobs/batch-inference.ts'
import type { EdgeClient } from './edge-client.ts'
import { mergeModels } from './jobs/merge-models.ts'
import { verifyArtifact } from './jobs/verify-artifact.ts'
import type { Logger } from './logger.ts'
import type { Progress } from './progress-reporter.ts'

// Which job types this runner can run, and the handler for each. A runner
// advertises exactly the types it has handlers for, so the edge never sends it
// work it cannot do.

export type JobParams<T extends JobType> = z.infer<(typeof jobParamsSchemas)[T]>
export type JobResult<T extends JobType> = z.infer<(typeof jobResultSchemas)[T]>

export type JobContext<T extends JobType> = {
  job: JobDispatch
  params: JobParams<T>
  signal: AbortSignal
  reportProgress(progress: Progress): void
  // Called between two units of work (a merged tensor, a chunk of rows):
  // resolves at once, unless a resilience test slows jobs down
  // (MOAT_CHAOS_STEP_DELAY_MS) so that a fault lands mid-job.
  checkpoint(): Promise<void>
  edge: EdgeClient
  cache: ArtifactCache
  models?: ModelCache
  logger: Logger
}

export type JobHandler<T extends JobType> = (context: JobContext<T>) => Promise<JobResult<T>>

export type JobRegistry = { [T in JobType]?: JobHandler<T> }

export const defaultJobRegistry: JobRegistry = {
  verify_artifact: verifyArtifact,
  merge: mergeModels,
  batch_inference: batchInference,
}

export function registeredJobTypes(registry: JobRegistry): JobType[] {
  return JOB_TYPES.filter((type) => registry[type] !== undefined)
}
