import { setTimeout as sleep } from 'node:timers/promises'
import { z } from 'zod'
import { backoffSeconds } from '../shared/backoff.ts'
import { signRunnerRequest } from '../shared/runner-signature.ts'
import type {
  JobProgressReport,
  JobReleaseReport,
  JobResultReport,
  RunnerRegistration,
} from '../shared/runner-wire.ts'
import { errorMessage, type Logger } from './logger.ts'

// Everything the runner asks of the edge, each request signed. Reports that
// matter (results, releases, upload steps) are retried on network errors and
// 5xx with backoff; a 4xx is the edge's final word.

export const registrationResponseSchema = z.object({
  runner_id: z.string(),
  heartbeat_ms: z.number().int().positive().optional(),
  stale: z.array(z.object({ job_id: z.string(), attempt: z.number().int().positive() })).default([]),
})
export type RegistrationResponse = z.infer<typeof registrationResponseSchema>

export const uploadCreatedSchema = z.object({ id: z.string().min(1), part_size: z.number().int().positive() })
export type UploadCreated = z.infer<typeof uploadCreatedSchema>

export const uploadCompletedSchema = z.object({
  artifact_key: z.string().min(1),
  sha256: z.string(),
  size: z.number().int().nonnegative(),
})
export type UploadCompleted = z.infer<typeof uploadCompletedSchema>

export type RetryOptions = { attempts: number; baseSeconds: number; maxSeconds: number }

export const DEFAULT_RETRY: RetryOptions = { attempts: 5, baseSeconds: 1, maxSeconds: 8 }

export class EdgeRequestError extends Error {
  readonly status: number | null

  constructor(message: string, status: number | null) {
    super(message)
    this.name = 'EdgeRequestError'
    this.status = status
  }
}

export type PartBody = {
  // Called once per try: a streamed body cannot be sent twice.
  open(): NonNullable<RequestInit['body']>
  sha256: string
  size: number
}

export type EdgeClient = {
  register(registration: RunnerRegistration, signal?: AbortSignal): Promise<RegistrationResponse>
  reportProgress(jobId: string, report: JobProgressReport, signal?: AbortSignal): Promise<void>
  reportResult(jobId: string, report: JobResultReport, signal?: AbortSignal): Promise<void>
  release(jobId: string, report: JobReleaseReport, signal?: AbortSignal): Promise<void>
  // The artifact's response with its body unread, or null when the edge has no such artifact.
  openArtifact(artifactKey: string, signal?: AbortSignal): Promise<Response | null>
  createUpload(input: { job_id: string; filename: string; bytes: number }, signal?: AbortSignal): Promise<UploadCreated>
  uploadPart(uploadId: string, partNumber: number, part: PartBody, signal?: AbortSignal): Promise<void>
  completeUpload(uploadId: string, sha256: string, signal?: AbortSignal): Promise<UploadCompleted>
}

export type EdgeClientOptions = {
  edgeUrl: string
  secret: string
  fetch?: typeof fetch
  retry?: RetryOptions
  // Per try, for requests with small bodies; artifact streams are bounded by the job's signal.
  requestTimeoutMs?: number
  logger?: Logger
}

type SendOptions = {
  method: 'GET' | 'POST' | 'PUT'
  path: string
  json?: unknown
  part?: PartBody
  retry: boolean
  timeout: boolean
  signal?: AbortSignal
}

// Artifact keys hold '/', sent as path segments. A '.' or '..' segment would be
// collapsed by URL parsing (even percent-encoded), so such keys are refused.
export function artifactPath(artifactKey: string): string {
  const segments = artifactKey.split('/')
  if (segments.some((segment) => segment === '' || segment === '.' || segment === '..')) {
    throw new EdgeRequestError(`invalid artifact key ${JSON.stringify(artifactKey)}`, null)
  }
  return `/internal/v1/artifacts/${segments.map(encodeURIComponent).join('/')}`
}

async function describeFailure(response: Response): Promise<string> {
  const text = await response.text().catch(() => '')
  try {
    const message = (JSON.parse(text) as { error?: { message?: unknown } }).error?.message
    if (typeof message === 'string') return message
  } catch {
    // Not the error envelope: fall back to the status line.
  }
  return response.statusText || 'request failed'
}

export function createEdgeClient(options: EdgeClientOptions): EdgeClient {
  const doFetch = options.fetch ?? fetch
  const retry = options.retry ?? DEFAULT_RETRY
  const timeoutMs = options.requestTimeoutMs ?? 30_000
  const base = new URL(options.edgeUrl)
  const basePath = base.pathname.replace(/\/$/, '')

  const attemptOnce = async (send: SendOptions): Promise<Response> => {
    // The edge sees the path after URL parsing, so sign exactly that.
    const url = new URL(`${basePath}${send.path}`, base)
    const signedPath = url.pathname + url.search
    const body = send.json === undefined ? undefined : JSON.stringify(send.json)
    const headers: Record<string, string> = await signRunnerRequest({
      secret: options.secret,
      method: send.method,
      path: signedPath,
      ...(send.part ? { bodySha256: send.part.sha256 } : body === undefined ? {} : { body }),
    })
    if (body !== undefined) headers['content-type'] = 'application/json'
    if (send.part) {
      headers['content-type'] = 'application/octet-stream'
      headers['content-length'] = String(send.part.size)
    }
    const signals = [send.signal, send.timeout ? AbortSignal.timeout(timeoutMs) : undefined].filter(
      (signal): signal is AbortSignal => signal !== undefined,
    )
    const init: RequestInit & { duplex?: 'half' } = {
      method: send.method,
      headers,
      body: send.part ? send.part.open() : body,
      signal: signals.length > 0 ? AbortSignal.any(signals) : null,
    }
    if (send.part) init.duplex = 'half'
    return doFetch(url, init)
  }

  const request = async (send: SendOptions): Promise<Response> => {
    const tries = send.retry ? retry.attempts : 1
    for (let attempt = 1; ; attempt++) {
      let failure: string
      try {
        const response = await attemptOnce(send)
        if (response.status < 500 || attempt >= tries) return response
        failure = `HTTP ${response.status}`
        await response.body?.cancel()
      } catch (error) {
        send.signal?.throwIfAborted()
        if (attempt >= tries) throw new EdgeRequestError(`${send.method} ${send.path}: ${errorMessage(error)}`, null)
        failure = errorMessage(error)
      }
      const delaySeconds = backoffSeconds(attempt, retry)
      options.logger?.warn('edge request failed, retrying', {
        method: send.method,
        path: send.path,
        failure,
        attempt,
        retry_in_ms: Math.round(delaySeconds * 1000),
      })
      await sleep(delaySeconds * 1000, undefined, { signal: send.signal })
    }
  }

  const expectOk = async (send: SendOptions): Promise<Response> => {
    const response = await request(send)
    if (response.ok) return response
    throw new EdgeRequestError(
      `${send.method} ${send.path} answered ${response.status}: ${await describeFailure(response)}`,
      response.status,
    )
  }

  const expectJson = async <T>(send: SendOptions, schema: z.ZodType<T>): Promise<T> => {
    const response = await expectOk(send)
    const parsed = schema.safeParse(await response.json().catch(() => undefined))
    if (!parsed.success) throw new EdgeRequestError(`${send.method} ${send.path}: unexpected response body`, response.status)
    return parsed.data
  }

  const discard = async (response: Response) => {
    await response.body?.cancel()
  }

  const jobPath = (jobId: string, action: string) => `/internal/v1/jobs/${encodeURIComponent(jobId)}/${action}`
  const uploadPath = (uploadId: string) => `/internal/v1/artifacts/uploads/${encodeURIComponent(uploadId)}`

  return {
    register: (registration, signal) =>
      expectJson(
        { method: 'POST', path: '/internal/v1/runners/register', json: registration, retry: false, timeout: true, signal },
        registrationResponseSchema,
      ),
    // Progress is never retried: the next report supersedes a lost one.
    reportProgress: async (jobId, report, signal) =>
      discard(await expectOk({ method: 'POST', path: jobPath(jobId, 'progress'), json: report, retry: false, timeout: true, signal })),
    reportResult: async (jobId, report, signal) =>
      discard(await expectOk({ method: 'POST', path: jobPath(jobId, 'result'), json: report, retry: true, timeout: true, signal })),
    release: async (jobId, report, signal) =>
      discard(await expectOk({ method: 'POST', path: jobPath(jobId, 'release'), json: report, retry: true, timeout: true, signal })),
    async openArtifact(artifactKey, signal) {
      const send: SendOptions = { method: 'GET', path: artifactPath(artifactKey), retry: true, timeout: false, signal }
      const response = await request(send)
      if (response.status === 404) {
        await discard(response)
        return null
      }
      if (response.ok) return response
      throw new EdgeRequestError(
        `GET ${send.path} answered ${response.status}: ${await describeFailure(response)}`,
        response.status,
      )
    },
    createUpload: (input, signal) =>
      expectJson(
        { method: 'POST', path: '/internal/v1/artifacts/uploads', json: input, retry: true, timeout: true, signal },
        uploadCreatedSchema,
      ),
    async uploadPart(uploadId, partNumber, part, signal) {
      const path = `${uploadPath(uploadId)}/parts/${partNumber}`
      await discard(await expectOk({ method: 'PUT', path, part, retry: true, timeout: false, signal }))
    },
    completeUpload: (uploadId, sha256, signal) =>
      expectJson(
        { method: 'POST', path: `${uploadPath(uploadId)}/complete`, json: { sha256 }, retry: true, timeout: true, signal },
        uploadCompletedSchema,
      ),
  }
}
