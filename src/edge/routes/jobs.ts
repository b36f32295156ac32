import { createRoute, z } from '@hono/zod-openapi'
import { and, desc, eq, lt } from 'drizzle-orm'
import { database } from '../db/client.ts'
import { jobs } from '../db/schema.ts'
import { ApiError, notFound } from '../errors.ts'
import { cancelJob } from '../jobs/cancel-job.ts'
import { batchInferenceParams } from '../inference/batch-inference-params.ts'
import { enqueueJob, verifyArtifactParams } from '../jobs/create-job.ts'
import { jobView } from '../jobs/job-view.ts'
import { streamJob } from '../jobs/stream-job.ts'
import { requireScope } from '../middleware/auth.ts'
import { idempotency } from '../middleware/idempotency.ts'
import { readSettings } from '../settings.ts'
import { meterUsage } from '../usage/meter-usage.ts'
import {
  bearerSecurity,
  conflictResponse,
  errorResponses,
  idParam,
  jsonBody,
  jsonResponse,
  listQuerySchema,
  listSchema,
  toList,
} from './api-schemas.ts'
import { versionNameSchema } from '../artifacts/artifact-names.ts'
import { createRouter } from './router.ts'

export const jobSchema = z
  .object({
    id: z.string(),
    object: z.literal('job'),
    type: z.string(),
    status: z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']),
    progress: z.object({ done: z.number().int(), total: z.number().int().nullable(), unit: z.string().nullable() }),
    params: z.record(z.string(), z.unknown()),
    result: z.record(z.string(), z.unknown()).nullable(),
    error: z.object({ message: z.string(), code: z.string() }).nullable(),
    attempts: z.number().int(),
    created_at: z.number().int(),
    started_at: z.number().int().nullable(),
    finished_at: z.number().int().nullable(),
  })
  .openapi('Job')

const createJobSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('verify_artifact'), model: z.string().min(1).max(64), version: versionNameSchema.optional() }),
  z.strictObject({
    type: z.literal('batch_inference'),
    model: z.string().min(1).max(64),
    version: versionNameSchema.optional(),
    input_artifact: z.string().min(1).max(64).openapi({ description: 'A completed upload: JSONL, one instance (a row, as predict takes it) per line' }),
  }),
])

const jobParams = z.object({ id: idParam('id') })

const create = createRoute({
  method: 'post',
  path: '/v1/jobs',
  tags: ['jobs'],
  security: bearerSecurity,
  middleware: [requireScope('jobs:write'), idempotency()] as const,
  request: { body: jsonBody(createJobSchema) },
  responses: { 202: jsonResponse(jobSchema, 'The queued job'), ...errorResponses, ...conflictResponse },
})

const get = createRoute({
  method: 'get',
  path: '/v1/jobs/{id}',
  tags: ['jobs'],
  security: bearerSecurity,
  middleware: [requireScope('jobs:read')] as const,
  request: { params: jobParams },
  responses: { 200: jsonResponse(jobSchema, 'The job'), ...errorResponses },
})

const list = createRoute({
  method: 'get',
  path: '/v1/jobs',
  tags: ['jobs'],
  security: bearerSecurity,
  middleware: [requireScope('jobs:read')] as const,
  request: { query: listQuerySchema },
  responses: { 200: jsonResponse(listSchema(jobSchema), 'Jobs, newest first'), ...errorResponses },
})

const cancel = createRoute({
  method: 'post',
  path: '/v1/jobs/{id}/cancel',
  tags: ['jobs'],
  security: bearerSecurity,
  middleware: [requireScope('jobs:write')] as const,
  request: { params: jobParams },
  responses: { 200: jsonResponse(jobSchema, 'The cancelled job'), ...errorResponses, ...conflictResponse },
})

const events = createRoute({
  method: 'get',
  path: '/v1/jobs/{id}/events',
  tags: ['jobs'],
  summary: "Server-sent events: a 'job' event with the job each time it changes; the stream ends after a final state",
  security: bearerSecurity,
  middleware: [requireScope('jobs:read')] as const,
  request: { params: jobParams },
  responses: { 200: { description: 'An event stream', content: { 'text/event-stream': { schema: z.string() } } }, ...errorResponses },
})

const output = createRoute({
  method: 'get',
  path: '/v1/jobs/{id}/output',
  tags: ['jobs'],
  summary: "A succeeded job's output file (batch inference: predictions as JSONL)",
  security: bearerSecurity,
  middleware: [requireScope('jobs:read')] as const,
  request: { params: jobParams },
  responses: { 200: { description: 'The file', content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } } }, ...errorResponses, ...conflictResponse },
})

export function jobRoutes() {
  return createRouter()
    .openapi(create, async (c) => {
      const body = c.req.valid('json')
      const auth = c.get('auth')
      const params =
        body.type === 'verify_artifact' ? await verifyArtifactParams(c.env, auth.tenantId, body) : await batchInferenceParams(c.env, auth.tenantId, body)
      const row = await enqueueJob(c.env, auth, { type: body.type, params, requestId: c.get('requestId') })
      await meterUsage(c, 'jobs.created', 1)
      return c.json(jobView(row), 202)
    })
    .openapi(output, async (c) => {
      const [row] = await database(c.env)
        .select()
        .from(jobs)
        .where(and(eq(jobs.id, c.req.valid('param').id), eq(jobs.tenantId, c.get('auth').tenantId)))
      if (!row) throw notFound('job', 'id')
      const key = (row.result as { output?: { artifact_key?: string } } | null)?.output?.artifact_key
      if (row.status !== 'succeeded' || !key) throw new ApiError(409, `Job ${row.id} has no output (it is ${row.status})`, { code: 'no_output' })
      const object = await c.env.ARTIFACTS.get(key)
      if (!object) throw notFound('job output', 'id')
      return new Response(object.body, {
        headers: { 'content-type': 'application/x-ndjson', 'content-length': String(object.size), 'x-moat-sha256': (row.result as { output: { sha256: string } }).output.sha256 },
      }) as never
    })
    .openapi(get, async (c) => {
      const [row] = await database(c.env)
        .select()
        .from(jobs)
        .where(and(eq(jobs.id, c.req.valid('param').id), eq(jobs.tenantId, c.get('auth').tenantId)))
      if (!row) throw notFound('job', 'id')
      return c.json(jobView(row), 200)
    })
    .openapi(list, async (c) => {
      const { limit, after } = c.req.valid('query')
      const rows = await database(c.env)
        .select()
        .from(jobs)
        .where(and(eq(jobs.tenantId, c.get('auth').tenantId), after ? lt(jobs.id, after) : undefined))
        .orderBy(desc(jobs.id))
        .limit(limit + 1)
      return c.json(toList(rows, limit, jobView), 200)
    })
    .openapi(cancel, async (c) => {
      const { id } = c.req.valid('param')
      const tenantId = c.get('auth').tenantId
      await cancelJob(c.env, tenantId, id, (promise) => c.executionCtx.waitUntil(promise))
      const [row] = await database(c.env).select().from(jobs).where(and(eq(jobs.id, id), eq(jobs.tenantId, tenantId)))
      return c.json(jobView(row!), 200)
    })
    .openapi(events, async (c) => {
      const { id } = c.req.valid('param')
      const tenantId = c.get('auth').tenantId
      const db = database(c.env)
      const load = async () => (await db.select().from(jobs).where(and(eq(jobs.id, id), eq(jobs.tenantId, tenantId))))[0]
      const first = await load()
      if (!first) throw notFound('job', 'id')
      return streamJob(c, first, load, readSettings(c.env).ssePollMs) as never
    })
}
