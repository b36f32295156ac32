import { createHash } from 'node:crypto'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { verifyRunnerSignature } from '../../../src/shared/runner-signature.ts'
import {
  jobProgressReportSchema,
  jobReleaseReportSchema,
  jobResultReportSchema,
  runnerRegistrationSchema,
  type JobProgressReport,
  type JobReleaseReport,
  type JobResultReport,
  type RunnerRegistration,
} from '../../../src/shared/runner-wire.ts'

// The edge as the runner sees it: checks every signature with the shared
// verifier, serves artifacts from memory, takes multipart uploads, and
// records everything the runner reports.

export type JobReport<T> = { jobId: string; report: T }

export type FakeUpload = { job_id: string; filename: string; bytes: number; parts: Buffer[]; completed: boolean }

export type FakeEdge = {
  url: string
  artifacts: Map<string, Uint8Array>
  artifactRequests: string[]
  registrations: RunnerRegistration[]
  progress: JobReport<JobProgressReport>[]
  results: JobReport<JobResultReport>[]
  releases: JobReport<JobReleaseReport>[]
  rejected: { path: string; reason: string }[]
  uploads: Map<string, FakeUpload>
  // Returned to every registration until changed.
  stale: { job_id: string; attempt: number }[]
  heartbeatMs: number
  partSize: number
  // Bytes per chunk when serving an artifact.
  chunkSize: number
  // The next requests whose path starts with `prefix` get these statuses, one each.
  failNext(prefix: string, ...statuses: number[]): void
  close(): Promise<void>
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex')

export async function startFakeEdge(secret: string, port = 0): Promise<FakeEdge> {
  const failures: { prefix: string; status: number }[] = []
  let uploadCount = 0
  const app = new Hono<{ Variables: { body: Buffer } }>()

  const edge: Omit<FakeEdge, 'url' | 'close'> = {
    artifacts: new Map(),
    artifactRequests: [],
    registrations: [],
    progress: [],
    results: [],
    releases: [],
    rejected: [],
    uploads: new Map(),
    stale: [],
    heartbeatMs: 60_000,
    partSize: 1024,
    chunkSize: 16 * 1024,
    failNext(prefix, ...statuses) {
      for (const status of statuses) failures.push({ prefix, status })
    },
  }

  app.use('/internal/*', async (c, next) => {
    const url = new URL(c.req.url)
    const path = url.pathname + url.search
    const check = await verifyRunnerSignature({ secret, method: c.req.method, path, headers: c.req.raw.headers })
    const body = Buffer.from(await c.req.arrayBuffer())
    const reason = !check.ok ? check.reason : sha256(body) !== check.bodySha256 ? 'body hash mismatch' : null
    if (reason) {
      edge.rejected.push({ path, reason })
      return c.json({ error: { message: reason, type: 'authentication_error', param: null, code: 'invalid_signature' } }, 401)
    }
    const failure = failures.findIndex((entry) => url.pathname.startsWith(entry.prefix))
    if (failure >= 0) {
      const [{ status }] = failures.splice(failure, 1) as [{ prefix: string; status: number }]
      return c.json({ error: { message: 'injected failure', type: 'server_error', param: null, code: null } }, status as 500)
    }
    c.set('body', body)
    await next()
  })

  const json = (body: Buffer): unknown => JSON.parse(body.toString('utf8'))

  app.post('/internal/v1/runners/register', (c) => {
    const registration = runnerRegistrationSchema.parse(json(c.get('body')))
    edge.registrations.push(registration)
    return c.json({ runner_id: registration.runner_id, heartbeat_ms: edge.heartbeatMs, stale: edge.stale })
  })

  app.post('/internal/v1/jobs/:id/progress', (c) => {
    edge.progress.push({ jobId: c.req.param('id'), report: jobProgressReportSchema.parse(json(c.get('body'))) })
    return c.json({ ok: true })
  })

  app.post('/internal/v1/jobs/:id/result', (c) => {
    edge.results.push({ jobId: c.req.param('id'), report: jobResultReportSchema.parse(json(c.get('body'))) })
    return c.json({ ok: true })
  })

  app.post('/internal/v1/jobs/:id/release', (c) => {
    edge.releases.push({ jobId: c.req.param('id'), report: jobReleaseReportSchema.parse(json(c.get('body'))) })
    return c.json({ ok: true })
  })

  app.post('/internal/v1/artifacts/uploads', (c) => {
    const input = json(c.get('body')) as { job_id: string; filename: string; bytes: number }
    const id = `upload_${++uploadCount}`
    edge.uploads.set(id, { ...input, parts: [], completed: false })
    return c.json({ id, part_size: edge.partSize })
  })

  app.put('/internal/v1/artifacts/uploads/:id/parts/:n', (c) => {
    const upload = edge.uploads.get(c.req.param('id'))
    if (!upload) return c.json({ error: { message: 'no such upload' } }, 404)
    if (Number(c.req.param('n')) !== upload.parts.length + 1) return c.json({ error: { message: 'part out of order' } }, 409)
    upload.parts.push(c.get('body'))
    return c.json({ ok: true })
  })

  app.post('/internal/v1/artifacts/uploads/:id/complete', (c) => {
    const upload = edge.uploads.get(c.req.param('id'))
    if (!upload) return c.json({ error: { message: 'no such upload' } }, 404)
    const bytes = Buffer.concat(upload.parts)
    const expected = (json(c.get('body')) as { sha256: string }).sha256
    if (sha256(bytes) !== expected || bytes.length !== upload.bytes) return c.json({ error: { message: 'hash mismatch' } }, 422)
    upload.completed = true
    const key = `outputs/${upload.job_id}/${upload.filename}`
    edge.artifacts.set(key, bytes)
    return c.json({ artifact_key: key, sha256: expected, size: bytes.length })
  })

  app.get('/internal/v1/artifacts/*', (c) => {
    const rest = new URL(c.req.url).pathname.slice('/internal/v1/artifacts/'.length)
    const key = rest.split('/').map(decodeURIComponent).join('/')
    edge.artifactRequests.push(key)
    const bytes = edge.artifacts.get(key)
    if (!bytes) return c.json({ error: { message: 'no such artifact', type: 'not_found_error', param: null, code: null } }, 404)
    let offset = 0
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (offset >= bytes.length) return controller.close()
        controller.enqueue(bytes.slice(offset, offset + edge.chunkSize))
        offset += edge.chunkSize
      },
    })
    return c.body(stream, 200, { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) })
  })

  const server = await new Promise<Server>((resolve) => {
    const listening = serve({ fetch: app.fetch, hostname: '127.0.0.1', port }, () => resolve(listening as Server))
  })
  return Object.assign(edge, {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  })
}
