import { z } from 'zod'
import { jobTypeSchema } from './job-types.ts'

// Messages on the signed channel between the edge and its runners.

// edge → runner: POST /jobs
export const jobDispatchSchema = z.strictObject({
  job_id: z.string().min(1),
  type: jobTypeSchema,
  attempt: z.number().int().positive(),
  tenant_id: z.string().min(1),
  params: z.record(z.string(), z.unknown()),
})
export type JobDispatch = z.infer<typeof jobDispatchSchema>

// runner → edge: POST /internal/v1/runners/register (also the heartbeat). A
// runner that is shutting down says `draining`, so no new job is sent to it.
export const runnerRegistrationSchema = z.strictObject({
  runner_id: z.string().min(1).max(128),
  state: z.enum(['active', 'draining']).default('active'),
  url: z.url({ protocol: /^https?$/ }),
  capacity: z.number().int().positive().max(1024),
  in_flight: z.number().int().nonnegative(),
  job_types: z.array(jobTypeSchema).min(1),
  running: z.array(z.strictObject({ job_id: z.string(), attempt: z.number().int().positive() })),
})
// What a runner sends (`state` may be left out) and what the edge reads.
export type RunnerRegistration = z.input<typeof runnerRegistrationSchema>
export type ReceivedRunnerRegistration = z.output<typeof runnerRegistrationSchema>

export const progressUnitSchema = z.enum(['bytes', 'tensors', 'rows', 'steps'])

// runner → edge: POST /internal/v1/jobs/{id}/progress
export const jobProgressReportSchema = z.strictObject({
  attempt: z.number().int().positive(),
  done: z.number().int().nonnegative(),
  total: z.number().int().nonnegative().nullable(),
  unit: progressUnitSchema,
})
export type JobProgressReport = z.infer<typeof jobProgressReportSchema>

export const jobErrorSchema = z.strictObject({ message: z.string().max(4000), code: z.string().max(100) })

// runner → edge: POST /internal/v1/jobs/{id}/result
export const jobResultReportSchema = z.discriminatedUnion('status', [
  z.strictObject({
    attempt: z.number().int().positive(),
    status: z.literal('succeeded'),
    result: z.record(z.string(), z.unknown()),
  }),
  z.strictObject({ attempt: z.number().int().positive(), status: z.literal('failed'), error: jobErrorSchema }),
])
export type JobResultReport = z.infer<typeof jobResultReportSchema>

// runner → edge: POST /internal/v1/jobs/{id}/release — the runner gives the job
// back unfinished (it is shutting down) so another runner can take it now.
export const jobReleaseReportSchema = z.strictObject({
  attempt: z.number().int().positive(),
  reason: z.string().max(500),
})
export type JobReleaseReport = z.infer<typeof jobReleaseReportSchema>
