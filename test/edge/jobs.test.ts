import { env } from 'cloudflare:workers'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { consumeQueue } from '../../src/edge/queues/consume.ts'
import { verifyRunnerSignature } from '../../src/shared/runner-signature.ts'
import {
  bytesOf,
  call,
  createTenant,
  deliver,
  jobRow,
  json,
  putArtifact,
  registerModel,
  registerRunner,
  RUNNER_SECRET,
  sha256Hex,
  signedCall,
  type Tenant,
} from './helpers.ts'

type RunnerCall = { url: string; body: any; verified: boolean }

// A runner on the far side of fetch: records signed dispatches and answers as told.
function fakeRunner(answer: (call: RunnerCall) => Response | Promise<Response>) {
  const calls: RunnerCall[] = []
  const spy = vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
    const request = new Request(input as RequestInfo, init as RequestInit)
    const url = new URL(request.url)
    const text = await request.text()
    const check = await verifyRunnerSignature({ secret: RUNNER_SECRET, method: request.method, path: url.pathname, headers: request.headers })
    const record = { url: request.url, body: text ? JSON.parse(text) : null, verified: check.ok && check.bodySha256 === (await sha256Hex(new TextEncoder().encode(text))) }
    calls.push(record)
    return answer(record)
  })
  return { calls, spy }
}

async function queuedJob(tenant: Tenant, bytes = bytesOf(2048)) {
  const modelId = await registerModel(tenant, `m-${crypto.randomUUID().slice(0, 8)}`)
  await putArtifact(tenant, modelId, '1', bytes)
  const res = await call('/v1/jobs', { key: tenant.adminKey, body: { type: 'verify_artifact', model: modelId } })
  expect(res.status).toBe(202)
  return { job: await json(res), modelId }
}

let runnerCount = 0
async function freshRunner(capacity = 2) {
  const id = `runner-${++runnerCount}-${crypto.randomUUID().slice(0, 6)}`
  // Only this runner is alive: earlier tests' runners are marked lost.
  await env.DB.prepare(`UPDATE runners SET status = 'lost'`).run()
  await registerRunner(id, `http://127.0.0.1:${9000 + runnerCount}`, { capacity })
  return id
}

beforeEach(() => vi.restoreAllMocks())
afterEach(() => vi.restoreAllMocks())

describe('job creation', () => {
  it('writes the row and puts exactly the job on the jobs queue', async () => {
    const tenant = await createTenant()
    const sent = vi.spyOn(env.JOBS, 'send')
    const { job, modelId } = await queuedJob(tenant)
    expect(job).toMatchObject({ object: 'job', type: 'verify_artifact', status: 'queued', attempts: 0 })
    expect(job.params).toMatchObject({ model_id: modelId, version: '1' })
    expect(sent).toHaveBeenCalledWith({ job_id: job.id })
    const fetched = await json(await call(`/v1/jobs/${job.id}`, { key: tenant.adminKey }))
    expect(fetched.id).toBe(job.id)
  })

  it('refuses a version with no files, an unknown type and another tenant’s model', async () => {
    const a = await createTenant()
    const b = await createTenant()
    const modelId = await registerModel(a)
    expect((await call('/v1/jobs', { key: a.adminKey, body: { type: 'verify_artifact', model: modelId } })).status).toBe(409)
    expect((await call('/v1/jobs', { key: a.adminKey, body: { type: 'train', model: modelId } })).status).toBe(400)
    await putArtifact(a, modelId, '1', bytesOf(10))
    expect((await call('/v1/jobs', { key: b.adminKey, body: { type: 'verify_artifact', model: modelId } })).status).toBe(404)
  })

  it('answers 503 and keeps no row when the queue refuses the job', async () => {
    const tenant = await createTenant()
    const modelId = await registerModel(tenant)
    await putArtifact(tenant, modelId, '1', bytesOf(10))
    vi.spyOn(env.JOBS, 'send').mockRejectedValueOnce(new Error('queue down'))
    const res = await call('/v1/jobs', { key: tenant.adminKey, body: { type: 'verify_artifact', model: modelId } })
    expect(res.status).toBe(503)
    const { results } = await env.DB.prepare('SELECT id FROM jobs WHERE tenant_id = ?1').bind(tenant.tenantId).all()
    expect(results).toHaveLength(0)
  })

  it('lists jobs newest first and hides other tenants', async () => {
    const a = await createTenant()
    const b = await createTenant()
    const first = (await queuedJob(a)).job
    const second = (await queuedJob(a)).job
    await queuedJob(b)
    const list = await json(await call('/v1/jobs', { key: a.adminKey }))
    expect(list.data.map((j: { id: string }) => j.id)).toEqual([second.id, first.id])
    expect((await call(`/v1/jobs/${first.id}`, { key: b.adminKey })).status).toBe(404)
  })
})

describe('dispatch from the jobs queue', () => {
  it('sends a signed job to a healthy runner and marks it running on 202', async () => {
    const tenant = await createTenant()
    const runnerId = await freshRunner()
    const { job } = await queuedJob(tenant)
    const runner = fakeRunner(() => new Response(JSON.stringify({ accepted: true }), { status: 202 }))
    const outcome = await deliver('moat-jobs', [{ job_id: job.id }])
    expect(outcome.explicitAcks).toHaveLength(1)
    expect(runner.calls).toHaveLength(1)
    expect(runner.calls[0]!.verified).toBe(true)
    expect(runner.calls[0]!.url).toMatch(/\/jobs$/)
    expect(runner.calls[0]!.body).toMatchObject({ job_id: job.id, type: 'verify_artifact', attempt: 1, tenant_id: tenant.tenantId })
    const row = await jobRow(job.id)
    expect(row).toMatchObject({ status: 'running', attempts: 1, runner_id: runnerId })
    expect(row!.started_at).toBeTypeOf('number')
  })

  it('does nothing for a duplicate message', async () => {
    const tenant = await createTenant()
    await freshRunner()
    const { job } = await queuedJob(tenant)
    const runner = fakeRunner(() => new Response(null, { status: 202 }))
    await deliver('moat-jobs', [{ job_id: job.id }])
    const again = await deliver('moat-jobs', [{ job_id: job.id }])
    expect(again.explicitAcks).toHaveLength(1)
    expect(runner.calls).toHaveLength(1)
    expect((await jobRow(job.id))!.attempts).toBe(1)
  })

  for (const [label, answer] of [
    ['429', () => new Response('full', { status: 429, headers: { 'retry-after': '1' } })],
    ['503', () => new Response('busy', { status: 503 })],
    ['a network error', () => Promise.reject(new TypeError('connection refused'))],
  ] as const) {
    it(`puts the job back and retries with backoff on ${label}`, async () => {
      const tenant = await createTenant()
      await freshRunner()
      const { job } = await queuedJob(tenant)
      fakeRunner(answer as () => Response)
      // The third delivery of the message: retried after 4 s (1, 2, 4, … up to 60).
      const retry = vi.fn()
      const message = { id: 'm', timestamp: new Date(), attempts: 3, body: { job_id: job.id }, ack: vi.fn(), retry }
      await consumeQueue({ queue: 'moat-jobs', messages: [message], ackAll: vi.fn(), retryAll: vi.fn() } as unknown as MessageBatch, env)
      expect(retry).toHaveBeenCalledWith({ delaySeconds: 4 })
      expect(message.ack).not.toHaveBeenCalled()
      const row = await jobRow(job.id)
      expect(row).toMatchObject({ status: 'queued', runner_id: null, attempts: 1 })
      expect(row!.last_dispatch_error).toBeTruthy()
    })
  }

  it('retries when no runner is alive', async () => {
    const tenant = await createTenant()
    await env.DB.prepare(`UPDATE runners SET status = 'lost'`).run()
    const { job } = await queuedJob(tenant)
    const outcome = await deliver('moat-jobs', [{ job_id: job.id }])
    expect(outcome.retryMessages).toHaveLength(1)
    expect((await jobRow(job.id))!.last_dispatch_error).toMatch(/no healthy runner/)
  })

  it('skips a runner whose heartbeat is older than the TTL', async () => {
    const tenant = await createTenant()
    const runnerId = await freshRunner()
    await env.DB.prepare('UPDATE runners SET heartbeat_at = ?2 WHERE id = ?1').bind(runnerId, Date.now() - 60_000).run()
    const { job } = await queuedJob(tenant)
    const runner = fakeRunner(() => new Response(null, { status: 202 }))
    await deliver('moat-jobs', [{ job_id: job.id }])
    expect(runner.calls).toHaveLength(0)
  })

  it('fails the job at once when the runner refuses it as invalid', async () => {
    const tenant = await createTenant()
    await freshRunner()
    const { job } = await queuedJob(tenant)
    fakeRunner(() => new Response(JSON.stringify({ error: { message: 'bad params' } }), { status: 400 }))
    const outcome = await deliver('moat-jobs', [{ job_id: job.id }])
    expect(outcome.explicitAcks).toHaveLength(1)
    const row = await jobRow(job.id)
    expect(row!.status).toBe('failed')
    expect(JSON.parse(row!.error).code).toBe('rejected_by_runner')
  })

  it('fails the job with the last reason when the dead-letter queue gets it', async () => {
    const tenant = await createTenant()
    await env.DB.prepare(`UPDATE runners SET status = 'lost'`).run()
    const { job } = await queuedJob(tenant)
    await deliver('moat-jobs', [{ job_id: job.id }])
    await deliver('moat-jobs-dlq', [{ job_id: job.id }], 9)
    const row = await jobRow(job.id)
    expect(row!.status).toBe('failed')
    const error = JSON.parse(row!.error)
    expect(error.code).toBe('dispatch_failed')
    expect(error.message).toMatch(/no healthy runner/)
    const letter = await env.DB.prepare(`SELECT queue FROM dead_letters WHERE body LIKE ?1`).bind(`%${job.id}%`).first()
    expect(letter).toEqual({ queue: 'moat-jobs-dlq' })
  })

  it('keeps a malformed message as a dead letter instead of crashing the batch', async () => {
    const outcome = await deliver('moat-jobs', [{ nope: true }])
    expect(outcome.explicitAcks).toHaveLength(1)
    const letter = await env.DB.prepare(`SELECT body FROM dead_letters WHERE body = ?1`).bind(JSON.stringify({ nope: true })).first()
    expect(letter).not.toBeNull()
  })
})

async function runningJob(tenant: Tenant, bytes = bytesOf(2048)) {
  const runnerId = await freshRunner()
  const { job, modelId } = await queuedJob(tenant, bytes)
  fakeRunner(() => new Response(null, { status: 202 }))
  await deliver('moat-jobs', [{ job_id: job.id }])
  vi.restoreAllMocks()
  return { job, modelId, runnerId }
}

describe('runner reports through the results queue', () => {
  it('queues signed progress and applies it; stale attempts and backwards progress change nothing', async () => {
    const tenant = await createTenant()
    const { job } = await runningJob(tenant)
    const sent = vi.spyOn(env.RESULTS, 'send')
    const res = await (await signedCall(`/internal/v1/jobs/${job.id}/progress`, { attempt: 1, done: 1024, total: 2048, unit: 'bytes' })).send()
    expect(res.status).toBe(202)
    const message = sent.mock.calls[0]![0]
    await deliver('moat-results', [message])
    expect(await jobRow(job.id)).toMatchObject({ progress_done: 1024, progress_total: 2048, progress_unit: 'bytes' })
    await deliver('moat-results', [{ ...message, report: { attempt: 1, done: 10, total: 2048, unit: 'bytes' } }])
    await deliver('moat-results', [{ ...message, report: { attempt: 7, done: 2000, total: 2048, unit: 'bytes' } }])
    expect((await jobRow(job.id))!.progress_done).toBe(1024)
  })

  it('applies a result once, records the verdict on the version, and ignores the duplicate', async () => {
    const tenant = await createTenant()
    const bytes = bytesOf(2048, 9)
    const { job, modelId } = await runningJob(tenant, bytes)
    const sha = await sha256Hex(bytes)
    const result = {
      verdict: 'verified',
      files: [{ name: 'model.safetensors', expected_sha256: sha, actual_sha256: sha, size: 2048, verdict: 'verified' }],
    }
    const sent = vi.spyOn(env.RESULTS, 'send')
    const usage = vi.spyOn(env.USAGE, 'send')
    const res = await (await signedCall(`/internal/v1/jobs/${job.id}/result`, { attempt: 1, status: 'succeeded', result })).send()
    expect(res.status).toBe(202)
    const message = sent.mock.calls[0]![0]
    await deliver('moat-results', [message])
    const row = await jobRow(job.id)
    expect(row).toMatchObject({ status: 'succeeded' })
    expect(JSON.parse(row!.result)).toEqual(result)
    const version = await json(await call(`/v1/models/${modelId}/versions/1`, { key: tenant.adminKey }))
    expect(version.verification).toBe('verified')
    expect(version.files[0].verification).toBe('verified')
    const runnerTime = usage.mock.calls.map(([event]) => event).filter((event) => event.meter === 'runner.seconds')
    expect(runnerTime).toEqual([expect.objectContaining({ tenant_id: tenant.tenantId, value: expect.any(Number), request_id: `job:${job.id}:1` })])

    // A redelivery after the version changed must not touch it again.
    await env.DB.prepare(`UPDATE model_versions SET verification = 'unverified' WHERE model_id = ?1`).bind(modelId).run()
    await deliver('moat-results', [message])
    expect((await json(await call(`/v1/models/${modelId}/versions/1`, { key: tenant.adminKey }))).verification).toBe('unverified')
  })

  it('records a mismatch verdict without marking anything verified', async () => {
    const tenant = await createTenant()
    const bytes = bytesOf(2048, 11)
    const { job, modelId } = await runningJob(tenant, bytes)
    const sha = await sha256Hex(bytes)
    const result = {
      verdict: 'mismatch',
      files: [{ name: 'model.safetensors', expected_sha256: sha, actual_sha256: 'b'.repeat(64), size: 2048, verdict: 'mismatch' }],
    }
    await deliver('moat-results', [{ kind: 'result', job_id: job.id, runner_id: null, report: { attempt: 1, status: 'succeeded', result } }])
    const version = await json(await call(`/v1/models/${modelId}/versions/1`, { key: tenant.adminKey }))
    expect(version.verification).toBe('failed')
    expect(version.files[0].verification).toBe('mismatch')
  })

  it('fails a job whose result does not match its type', async () => {
    const tenant = await createTenant()
    const { job } = await runningJob(tenant)
    await deliver('moat-results', [{ kind: 'result', job_id: job.id, runner_id: null, report: { attempt: 1, status: 'succeeded', result: { verdict: 'maybe' } } }])
    const row = await jobRow(job.id)
    expect(row!.status).toBe('failed')
    expect(JSON.parse(row!.error).code).toBe('invalid_result')
  })

  it('requeues a released job for a new attempt, once', async () => {
    const tenant = await createTenant()
    const { job } = await runningJob(tenant)
    const sent = vi.spyOn(env.JOBS, 'send')
    const release = { kind: 'release', job_id: job.id, runner_id: null, report: { attempt: 1, reason: 'shutting down' } }
    await deliver('moat-results', [release])
    await deliver('moat-results', [release])
    expect(await jobRow(job.id)).toMatchObject({ status: 'queued', runner_id: null, attempts: 1 })
    expect(sent).toHaveBeenCalledTimes(1)
  })
})

describe('the runner channel refuses bad signatures', () => {
  it('401 for a wrong secret, a stale timestamp, a tampered body and a replay; nothing changes', async () => {
    const registration = { runner_id: 'evil', url: 'http://127.0.0.1:1', capacity: 1, in_flight: 0, job_types: ['verify_artifact'], running: [] }
    const path = '/internal/v1/runners/register'
    const wrongSecret = await (await signedCall(path, registration, { secret: 'guess' })).send()
    const stale = await (await signedCall(path, registration, { now: Date.now() - 301_000 })).send()
    const signed = await signedCall(path, registration)
    const tampered = await fetchWithBody(path, signed.headers, { ...registration, capacity: 99 })
    for (const res of [wrongSecret, stale, tampered]) {
      expect(res.status).toBe(401)
      expect((await json(res)).error.code).toBe('invalid_signature')
    }
    expect(await env.DB.prepare(`SELECT id FROM runners WHERE id = 'evil'`).first()).toBeNull()
    expect((await signed.send()).status).toBe(200)
    const replay = await signed.send()
    expect(replay.status).toBe(401)
    expect((await json(replay)).error.message).toMatch(/replayed/)
  })

  it('refuses a result for a job on a bad signature, leaving the job as it was', async () => {
    const tenant = await createTenant()
    const { job } = await runningJob(tenant)
    const sent = vi.spyOn(env.RESULTS, 'send')
    const res = await (await signedCall(`/internal/v1/jobs/${job.id}/result`, { attempt: 1, status: 'failed', error: { message: 'x', code: 'y' } }, { secret: 'nope' })).send()
    expect(res.status).toBe(401)
    expect(sent).not.toHaveBeenCalled()
    expect((await jobRow(job.id))!.status).toBe('running')
  })
})

async function fetchWithBody(path: string, headers: Record<string, string>, body: unknown) {
  const { exports } = await import('cloudflare:workers')
  return exports.default.fetch(`http://moat.test${path}`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
}

describe('lost runners and heartbeats', () => {
  it('requeues the jobs of a runner that stopped heartbeating when another runner heartbeats', async () => {
    const tenant = await createTenant()
    const { job, runnerId } = await runningJob(tenant)
    await env.DB.prepare('UPDATE runners SET heartbeat_at = ?2 WHERE id = ?1').bind(runnerId, Date.now() - 60_000).run()
    const sent = vi.spyOn(env.JOBS, 'send')
    const { sweepLostRunners } = await import('../../src/edge/runners/sweep.ts')
    expect(await sweepLostRunners(env)).toBe(1)
    expect(await sweepLostRunners(env)).toBe(0)
    expect(await jobRow(job.id)).toMatchObject({ status: 'queued', runner_id: null })
    expect(sent).toHaveBeenCalledWith({ job_id: job.id })
  })

  it('sends nothing to a draining runner and leaves its running jobs to it', async () => {
    const tenant = await createTenant()
    const { job, runnerId } = await runningJob(tenant)
    const row = await env.DB.prepare('SELECT url FROM runners WHERE id = ?1').bind(runnerId).first<{ url: string }>()
    await registerRunner(runnerId, row!.url, { state: 'draining', running: [{ job_id: job.id, attempt: 1 }] })
    const { sweepLostRunners } = await import('../../src/edge/runners/sweep.ts')
    expect(await sweepLostRunners(env)).toBe(0)
    expect((await jobRow(job.id))!.status).toBe('running')
    const next = await queuedJob(tenant)
    const runner = fakeRunner(() => new Response(null, { status: 202 }))
    const outcome = await deliver('moat-jobs', [{ job_id: next.job.id }])
    expect(outcome.retryMessages).toHaveLength(1)
    expect(runner.calls).toHaveLength(0)
  })

  it('replaces the earlier process at the same URL and tells a runner which jobs are stale', async () => {
    const tenant = await createTenant()
    const { job, runnerId } = await runningJob(tenant)
    const row = await env.DB.prepare('SELECT url FROM runners WHERE id = ?1').bind(runnerId).first<{ url: string }>()
    await registerRunner('runner-restarted', row!.url)
    expect(await env.DB.prepare('SELECT status FROM runners WHERE id = ?1').bind(runnerId).first()).toEqual({ status: 'replaced' })
    const { sweepLostRunners } = await import('../../src/edge/runners/sweep.ts')
    await sweepLostRunners(env)
    expect((await jobRow(job.id))!.status).toBe('queued')
    const reply = await registerRunner(runnerId, 'http://127.0.0.1:9999', { running: [{ job_id: job.id, attempt: 1 }] })
    expect(reply.stale).toEqual([{ job_id: job.id, attempt: 1 }])
  })
})

describe('cancel and events', () => {
  it('cancels a running job, tells the runner, and ignores its late result', async () => {
    const tenant = await createTenant()
    const { job } = await runningJob(tenant)
    const runner = fakeRunner(() => new Response(null, { status: 200 }))
    const res = await call(`/v1/jobs/${job.id}/cancel`, { method: 'POST', key: tenant.adminKey })
    expect(res.status).toBe(200)
    expect((await json(res)).status).toBe('cancelled')
    await vi.waitFor(() => expect(runner.calls.some((c) => c.url.endsWith(`/jobs/${job.id}/cancel`) && c.verified)).toBe(true))
    await deliver('moat-results', [{ kind: 'result', job_id: job.id, runner_id: null, report: { attempt: 1, status: 'failed', error: { message: 'x', code: 'y' } } }])
    expect((await jobRow(job.id))!.status).toBe('cancelled')
    const again = await call(`/v1/jobs/${job.id}/cancel`, { method: 'POST', key: tenant.adminKey })
    expect(again.status).toBe(409)
  })

  it('streams job events and ends after the final state', async () => {
    const tenant = await createTenant()
    const { job } = await runningJob(tenant)
    const res = await call(`/v1/jobs/${job.id}/events`, { key: tenant.adminKey })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/)
    const reader = res.body!.getReader()
    const first = new TextDecoder().decode((await reader.read()).value)
    expect(first).toMatch(/^event: job\ndata: \{.*"status":"running"/)
    fakeRunner(() => new Response(null, { status: 200 }))
    await call(`/v1/jobs/${job.id}/cancel`, { method: 'POST', key: tenant.adminKey })
    let rest = ''
    for (;;) {
      const chunk = await reader.read()
      if (chunk.done) break
      rest += new TextDecoder().decode(chunk.value)
    }
    expect(rest).toMatch(/"status":"cancelled"/)
  })
})
