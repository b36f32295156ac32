import { z } from 'zod'
import { jobProgressReportSchema, jobReleaseReportSchema, jobResultReportSchema } from '../../shared/runner-wire.ts'

// Queue `moat-jobs`: a job that waits for a runner.
export const jobQueueMessageSchema = z.strictObject({ job_id: z.string().min(1) })
export type JobQueueMessage = z.infer<typeof jobQueueMessageSchema>

// Queue `moat-results`: what a runner reported, as the signed endpoint received it.
export const resultQueueMessageSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('progress'), job_id: z.string(), runner_id: z.string().nullable(), report: jobProgressReportSchema }),
  z.strictObject({ kind: z.literal('result'), job_id: z.string(), runner_id: z.string().nullable(), report: jobResultReportSchema }),
  z.strictObject({ kind: z.literal('release'), job_id: z.string(), runner_id: z.string().nullable(), report: jobReleaseReportSchema }),
])
export type ResultQueueMessage = z.infer<typeof resultQueueMessageSchema>
