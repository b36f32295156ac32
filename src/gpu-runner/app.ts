import { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { requestId } from 'hono/request-id'
import { z } from 'zod'
import { jobParamsSchemas } from '../shared/job-types.ts'
import { jobDispatchSchema } from '../shared/runner-wire.ts'
import { errorResponse } from './error-envelope.ts'
import { registeredJobTypes, type JobRegistry } from './job-registry.ts'
import type { JobSupervisor } from './job-supervisor.ts'
import { errorMessage, type Logger } from './logger.ts'
import type { ReplayCache } from './replay-cache.ts'
import { signedRequest } from './signed-request.ts'

// The runner's HTTP face, called only by the edge: take a job, cancel a job,
// and say how busy it is.

export type RunnerAppOptions = {
  runnerId: string
  secret: string
  supervisor: JobSupervisor
  registry: JobRegistry
  replayCache: ReplayCache
  // What a full runner tells the edge to wait before dispatching again.
  retryAfterSeconds: number
  isDraining(): boolean
  logger: Logger
  // Adds routes that need the signature check (hosted inference).
  extend?: (app: Hono<{ Variables: import('./signed-request.ts').SignedRequestVariables }>, signed: ReturnType<typeof signedRequest>) => void
}

// A dispatch names its files, not their bytes; anything larger is not from the edge.
const MAX_DISPATCH_BYTES = 1024 * 1024

const cancelBodySchema = z.strictObject({ attempt: z.number().int().positive().optional() })

// Names the offending field; an unknown key is reported at the key itself.
function describeIssue(issue: z.core.$ZodIssue | undefined, prefix: string[] = []): { param: string; message: string } {
  const path = (issue?.path ?? []).map(String)
  if (issue?.code === 'unrecognized_keys' && issue.keys[0] !== undefined) path.push(issue.keys[0])
  const param = [...prefix, ...path].join('.')
  const message = issue?.message ?? 'invalid value'
  return { param, message: param ? `${param}: ${message}` : message }
}

export function createRunnerApp(options: RunnerAppOptions) {
  const { supervisor, logger } = options
  const jobTypes = registeredJobTypes(options.registry)
  const app = new Hono()
  const signed = signedRequest({ secret: options.secret, replayCache: options.replayCache })

  app.use(requestId())

  app.get('/healthz', (c) =>
    c.json({
      status: 'ok',
      runner_id: options.runnerId,
      capacity: supervisor.capacity,
      in_flight: supervisor.inFlight,
      job_types: jobTypes,
      draining: options.isDraining(),
    }),
  )

  app.post(
    '/jobs',
    bodyLimit({
      maxSize: MAX_DISPATCH_BYTES,
      onError: (c) =>
        errorResponse(c, { status: 413, message: 'dispatch body too large', type: 'invalid_request_error', code: 'body_too_large' }),
    }),
    signed,
    async (c) => {
      const invalid = (param: string | null, message: string, code: string) =>
        errorResponse(c, { status: 400, message, type: 'invalid_request_error', param, code })

      let body: unknown
      try {
        body = JSON.parse(c.get('signedBody'))
      } catch {
        return invalid(null, 'body must be JSON', 'invalid_json')
      }
      const dispatch = jobDispatchSchema.safeParse(body)
      if (!dispatch.success) {
        const issue = describeIssue(dispatch.error.issues[0])
        return invalid(issue.param || null, issue.message, 'invalid_dispatch')
      }
      const job = dispatch.data
      if (!jobTypes.includes(job.type)) {
        return invalid('type', `type: this runner does not run ${job.type} jobs`, 'unsupported_job_type')
      }
      const params = jobParamsSchemas[job.type].safeParse(job.params)
      if (!params.success) {
        const issue = describeIssue(params.error.issues[0], ['params'])
        return invalid(issue.param, issue.message, 'invalid_params')
      }

      const alreadyRunning = supervisor.running().some((ref) => ref.job_id === job.job_id && ref.attempt === job.attempt)
      if (!alreadyRunning && options.isDraining()) {
        return errorResponse(c, {
          status: 503,
          message: 'runner is shutting down',
          type: 'service_unavailable_error',
          code: 'runner_draining',
        })
      }
      const outcome = supervisor.start(job, params.data)
      if (outcome === 'full') {
        return errorResponse(c, {
          status: 429,
          message: `runner is at capacity (${supervisor.capacity} jobs)`,
          type: 'rate_limit_error',
          code: 'runner_full',
          headers: { 'retry-after': String(options.retryAfterSeconds) },
        })
      }
      if (outcome === 'outdated') {
        return errorResponse(c, {
          status: 409,
          message: `a later attempt of job ${job.job_id} runs here`,
          type: 'conflict_error',
          param: 'attempt',
          code: 'attempt_superseded',
        })
      }
      return c.json({ accepted: true }, 202)
    },
  )

  app.post('/jobs/:id/cancel', signed, (c) => {
    const text = c.get('signedBody')
    let attempt: number | undefined
    if (text.trim()) {
      let parsed: z.ZodSafeParseResult<z.infer<typeof cancelBodySchema>>
      try {
        parsed = cancelBodySchema.safeParse(JSON.parse(text))
      } catch {
        return errorResponse(c, { status: 400, message: 'body must be JSON', type: 'invalid_request_error', code: 'invalid_json' })
      }
      if (!parsed.success) {
        const issue = describeIssue(parsed.error.issues[0])
        return errorResponse(c, { status: 400, ...issue, type: 'invalid_request_error', code: 'invalid_cancel' })
      }
      attempt = parsed.data.attempt
    }
    const jobId = c.req.param('id')
    if (!supervisor.cancel(jobId, attempt)) {
      return errorResponse(c, { status: 404, message: `job ${jobId} is not running here`, type: 'not_found_error', code: 'job_not_found' })
    }
    return c.json({ cancelled: true })
  })

  options.extend?.(app as never, signed)

  app.notFound((c) => errorResponse(c, { status: 404, message: 'no such route', type: 'not_found_error', code: 'route_not_found' }))

  app.onError((error, c) => {
    logger.error('request failed', { path: c.req.path, error: errorMessage(error) })
    return errorResponse(c, { status: 500, message: 'internal runner error', type: 'server_error', code: 'internal_error' })
  })

  return app
}
