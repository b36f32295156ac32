import { Hono, type Context } from 'hono'
import { z } from 'zod'
import { SHA256_HEX } from '../../shared/encoding.ts'
import {
  jobProgressReportSchema,
  jobReleaseReportSchema,
  jobResultReportSchema,
  runnerRegistrationSchema,
} from '../../shared/runner-wire.ts'
import { CONTENT_SHA256_HEADER } from '../../shared/runner-signature.ts'
import { fileNameSchema } from '../artifacts/artifact-names.ts'
import { requireContentLength } from '../artifacts/hashing-stream.ts'
import { completeUpload, createUpload, findUpload, MAX_PART_BYTES, putUploadPart } from '../artifacts/multipart-upload.ts'
import type { AppEnv } from '../env.ts'
import { ApiError, notFound } from '../errors.ts'
import type { ResultQueueMessage } from '../jobs/job-messages.ts'
import { validationError } from '../middleware/error-envelope.ts'
import { verifyRunnerRequest } from '../middleware/runner-signature.ts'
import { registerRunner } from '../runners/register-runner.ts'
import { sweepLostRunners } from '../runners/sweep.ts'

// The runner side of the signed channel (not part of the public OpenAPI).
// Reports are not applied here: they go onto the results queue, whose
// consumer applies them idempotently, so a burst of runner traffic never
// contends with the public API for the database.

async function parseBody<T>(c: Context<AppEnv>, schema: z.ZodType<T>): Promise<T> {
  let body: unknown
  try {
    body = await c.req.json()
  } catch {
    throw new ApiError(400, 'Malformed JSON body', { code: 'invalid_json' })
  }
  const parsed = schema.safeParse(body)
  if (!parsed.success) throw validationError(parsed.error, 'body')
  return parsed.data
}

async function jobTenant(c: Context<AppEnv>, jobId: string): Promise<{ tenant_id: string; runner_id: string | null }> {
  const job = await c.env.DB.prepare('SELECT tenant_id, runner_id FROM jobs WHERE id = ?1')
    .bind(jobId)
    .first<{ tenant_id: string; runner_id: string | null }>()
  if (!job) throw notFound('job', 'id')
  return job
}

const createOutputSchema = z.strictObject({
  job_id: z.string().min(1),
  filename: fileNameSchema,
  bytes: z.number().int().min(1),
})

export function internalRoutes() {
  const app = new Hono<AppEnv>()
  app.use('/internal/*', verifyRunnerRequest())

  app.post('/internal/v1/runners/register', async (c) => {
    const registration = await parseBody(c, runnerRegistrationSchema)
    const reply = await registerRunner(c.env, registration)
    c.executionCtx.waitUntil(sweepLostRunners(c.env))
    return c.json(reply)
  })

  const enqueueReport = async (c: Context<AppEnv>, message: ResultQueueMessage) => {
    await c.env.RESULTS.send(message)
    return c.json({ accepted: true }, 202)
  }
  app.post('/internal/v1/jobs/:id/progress', async (c) => {
    const report = await parseBody(c, jobProgressReportSchema)
    const job = await jobTenant(c, c.req.param('id'))
    return enqueueReport(c, { kind: 'progress', job_id: c.req.param('id'), runner_id: job.runner_id, report })
  })
  app.post('/internal/v1/jobs/:id/result', async (c) => {
    const report = await parseBody(c, jobResultReportSchema)
    const job = await jobTenant(c, c.req.param('id'))
    return enqueueReport(c, { kind: 'result', job_id: c.req.param('id'), runner_id: job.runner_id, report })
  })
  app.post('/internal/v1/jobs/:id/release', async (c) => {
    const report = await parseBody(c, jobReleaseReportSchema)
    const job = await jobTenant(c, c.req.param('id'))
    return enqueueReport(c, { kind: 'release', job_id: c.req.param('id'), runner_id: job.runner_id, report })
  })

  app.post('/internal/v1/artifacts/uploads', async (c) => {
    const input = await parseBody(c, createOutputSchema)
    const job = await jobTenant(c, input.job_id)
    const upload = await createUpload(c.env, {
      tenantId: job.tenant_id,
      filename: input.filename,
      purpose: 'job_output',
      bytes: input.bytes,
      mimeType: null,
      jobId: input.job_id,
    })
    return c.json({ id: upload.id, part_size: MAX_PART_BYTES }, 201)
  })

  const findJobUpload = async (c: Context<AppEnv>, id: string) => {
    const upload = await c.env.DB.prepare('SELECT tenant_id FROM uploads WHERE id = ?1 AND job_id IS NOT NULL')
      .bind(id)
      .first<{ tenant_id: string }>()
    if (!upload) throw notFound('upload', 'id')
    return findUpload(c.env, upload.tenant_id, id)
  }

  app.put('/internal/v1/artifacts/uploads/:id/parts/:part{[0-9]+}', async (c) => {
    const upload = await findJobUpload(c, c.req.param('id'))
    const length = requireContentLength(c.req.header('content-length'), MAX_PART_BYTES, 'A part')
    const body = c.req.raw.body
    if (!body) throw new ApiError(400, 'Missing body', { code: 'missing_body' })
    const updated = await putUploadPart(c.env, upload, {
      partNumber: Number(c.req.param('part')),
      body,
      length,
      expectedPartSha256: c.req.header(CONTENT_SHA256_HEADER) ?? '',
    })
    return c.json({ id: updated.id, next_part: updated.nextPart, received_bytes: updated.receivedBytes })
  })

  app.post('/internal/v1/artifacts/uploads/:id/complete', async (c) => {
    const { sha256 } = await parseBody(c, z.strictObject({ sha256: z.string().regex(SHA256_HEX) }))
    const upload = await findJobUpload(c, c.req.param('id'))
    const completed = await completeUpload(c.env, upload, sha256)
    return c.json({ artifact_key: completed.artifactKey, sha256: completed.sha256, size: completed.bytes })
  })

  // Artifact keys contain '/': the rest of the path is the key.
  app.get('/internal/v1/artifacts/*', async (c) => {
    const prefix = '/internal/v1/artifacts/'
    const path = new URL(c.req.url).pathname
    const key = path.slice(prefix.length).split('/').map(decodeURIComponent).join('/')
    const object = await c.env.ARTIFACTS.get(key)
    if (!object) throw notFound('artifact', 'key')
    const headers = new Headers({ 'content-length': String(object.size), 'content-type': 'application/octet-stream' })
    return new Response(object.body, { headers })
  })

  return app
}
