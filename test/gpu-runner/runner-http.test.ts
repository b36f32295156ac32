import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { createRunnerApp } from '../../src/gpu-runner/app.ts'
import type { JobSupervisor } from '../../src/gpu-runner/job-supervisor.ts'
import { createLogger } from '../../src/gpu-runner/logger.ts'
import { createReplayCache } from '../../src/gpu-runner/replay-cache.ts'
import { signRunnerRequest } from '../../src/shared/runner-signature.ts'
import { SECRET, signedHeaders, signedPost, verifyDispatch, waitFor } from './support/fixtures.ts'
import { gatedRegistry, healthz, startWorld, type TestWorld } from './support/world.ts'

const FILE = { name: 'a.onnx', artifact_key: 'models/a.onnx', sha256: 'a'.repeat(64), size: 1 }

describe('runner HTTP API', () => {
  let world: TestWorld
  afterEach(async () => {
    await world?.close()
  })

  // The same body signed again within the same second has the same signature,
  // which the replay cache refuses; the edge's queue redelivers seconds later.
  const resend = async (dispatch: unknown) => {
    const body = JSON.stringify(dispatch)
    const headers = await signRunnerRequest({ secret: SECRET, method: 'POST', path: '/jobs', body, now: Date.now() + 1000 })
    return signedPost(world.runner.url, '/jobs', body, { headers })
  }

  const start = async (env: Record<string, string> = {}) => {
    const gated = gatedRegistry()
    world = await startWorld({ registry: gated.registry, env })
    return gated
  }

  it('reports its state on /healthz', async () => {
    await start({ MOAT_RUNNER_CAPACITY: '3', MOAT_RUNNER_ID: 'runner-health' })
    const response = await fetch(`${world.runner.url}/healthz`)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({
      status: 'ok',
      runner_id: 'runner-health',
      capacity: 3,
      in_flight: 0,
      job_types: ['verify_artifact'],
      draining: false,
    })
  })

  it('accepts a signed dispatch with 202 and runs it', async () => {
    const gated = await start()
    const response = await signedPost(world.runner.url, '/jobs', verifyDispatch('job_1', [FILE]))
    expect(response.status).toBe(202)
    expect(await response.json()).toEqual({ accepted: true })
    expect(response.headers.get('x-request-id')).toBeTruthy()
    await waitFor(() => gated.calls.length === 1)
    expect((await healthz(world.runner)).in_flight).toBe(1)
    gated.finish('job_1')
    await waitFor(() => world.edge.results.length === 1)
    expect(world.edge.results[0]).toEqual({
      jobId: 'job_1',
      report: { attempt: 1, status: 'succeeded', result: { verdict: 'verified', files: [] } },
    })
    expect((await healthz(world.runner)).in_flight).toBe(0)
  })

  it('reports a job that throws as failed, with its message and code', async () => {
    world = await startWorld({
      registry: {
        verify_artifact: async ({ job }) => {
          if (job.job_id === 'job_throws') throw new Error('kaput')
          return { verdict: 'verified', files: [], surprise: true } as never
        },
      },
    })
    expect((await signedPost(world.runner.url, '/jobs', verifyDispatch('job_throws', [FILE]))).status).toBe(202)
    expect((await signedPost(world.runner.url, '/jobs', verifyDispatch('job_odd', [FILE]))).status).toBe(202)
    await waitFor(() => world.edge.results.length === 2)
    const byJob = Object.fromEntries(world.edge.results.map((entry) => [entry.jobId, entry.report]))
    expect(byJob.job_throws).toEqual({ attempt: 1, status: 'failed', error: { message: 'kaput', code: 'job_failed' } })
    expect(byJob.job_odd).toMatchObject({ status: 'failed', error: { code: 'invalid_result' } })
  })

  describe('refuses requests the edge did not sign, and runs nothing', () => {
    const expectRefused = async (response: Response, code: string) => {
      expect(response.status).toBe(401)
      const body = (await response.json()) as { error: { type: string; code: string; message: string; param: null } }
      expect(body.error).toMatchObject({ type: 'authentication_error', code, param: null })
      expect(typeof body.error.message).toBe('string')
    }

    it('a signature made with another secret', async () => {
      const gated = await start()
      const response = await signedPost(world.runner.url, '/jobs', verifyDispatch('job_1', [FILE]), { secret: 'wrong-secret' })
      await expectRefused(response, 'invalid_signature')
      await sleep(50)
      expect(gated.calls).toEqual([])
    })

    it('no signature at all', async () => {
      const gated = await start()
      const response = await signedPost(world.runner.url, '/jobs', verifyDispatch('job_1', [FILE]), { headers: {} })
      await expectRefused(response, 'invalid_signature')
      expect(gated.calls).toEqual([])
    })

    it('a signature for another path', async () => {
      const gated = await start()
      const body = JSON.stringify(verifyDispatch('job_1', [FILE]))
      const headers = await signedHeaders('/jobs/other', body)
      await expectRefused(await signedPost(world.runner.url, '/jobs', body, { headers }), 'invalid_signature')
      expect(gated.calls).toEqual([])
    })

    it('an expired timestamp', async () => {
      const gated = await start()
      const body = JSON.stringify(verifyDispatch('job_1', [FILE]))
      const headers = await signRunnerRequest({ secret: SECRET, method: 'POST', path: '/jobs', body, now: Date.now() - 301_000 })
      await expectRefused(await signedPost(world.runner.url, '/jobs', body, { headers }), 'invalid_signature')
      expect(gated.calls).toEqual([])
    })

    it('a tampered body', async () => {
      const gated = await start()
      const signed = verifyDispatch('job_1', [FILE])
      const tampered = JSON.stringify({ ...signed, tenant_id: 'tenant_evil' })
      const response = await signedPost(world.runner.url, '/jobs', signed, { sendBody: tampered })
      await expectRefused(response, 'body_hash_mismatch')
      await sleep(50)
      expect(gated.calls).toEqual([])
    })

    it('a replayed request', async () => {
      const gated = await start()
      const body = JSON.stringify(verifyDispatch('job_1', [FILE]))
      const headers = await signedHeaders('/jobs', body)
      expect((await signedPost(world.runner.url, '/jobs', body, { headers })).status).toBe(202)
      await waitFor(() => gated.calls.length === 1)
      gated.finish('job_1')
      await waitFor(() => world.edge.results.length === 1)
      // The job is over, so only the replay cache stands between the copy and a second run.
      await expectRefused(await signedPost(world.runner.url, '/jobs', body, { headers }), 'replayed_request')
      await sleep(50)
      expect(gated.calls).toEqual(['job_1#1'])
    })
  })

  describe('validates the dispatch', () => {
    const expectInvalid = async (body: unknown, param: string | null, code: string) => {
      const response = await signedPost(world.runner.url, '/jobs', body)
      expect(response.status).toBe(400)
      const { error } = (await response.json()) as { error: { type: string; param: string | null; code: string; message: string } }
      expect(error).toMatchObject({ type: 'invalid_request_error', param, code })
      if (param) expect(error.message).toContain(param)
    }

    it('names the field that is wrong', async () => {
      const gated = await start()
      const valid = verifyDispatch('job_1', [FILE])
      await expectInvalid('{not json', null, 'invalid_json')
      await expectInvalid({ ...valid, job_id: undefined }, 'job_id', 'invalid_dispatch')
      await expectInvalid({ ...valid, attempt: 0 }, 'attempt', 'invalid_dispatch')
      await expectInvalid({ ...valid, type: 'mine_bitcoin' }, 'type', 'invalid_dispatch')
      await expectInvalid({ ...valid, extra: true }, 'extra', 'invalid_dispatch')
      await expectInvalid({ ...valid, params: { ...valid.params, files: [] } }, 'params.files', 'invalid_params')
      await expectInvalid(
        verifyDispatch('job_1', [{ ...FILE, sha256: 'not-a-hash' }]),
        'params.files.0.sha256',
        'invalid_params',
      )
      expect(gated.calls).toEqual([])
    })

    it('refuses job types it has no handler for', async () => {
      const idle: JobSupervisor = {
        capacity: 1,
        inFlight: 0,
        running: () => [],
        start: () => {
          throw new Error('nothing may start')
        },
        cancel: () => false,
        abortStale: () => {},
        waitForIdle: async () => true,
        releaseAll: async () => {},
      }
      const app = createRunnerApp({
        runnerId: 'runner_without_handlers',
        secret: SECRET,
        supervisor: idle,
        registry: {},
        replayCache: createReplayCache(),
        retryAfterSeconds: 1,
        isDraining: () => false,
        logger: createLogger({ write: () => {} }),
      })
      const body = JSON.stringify(verifyDispatch('job_1', [FILE]))
      const response = await app.request('/jobs', { method: 'POST', body, headers: await signedHeaders('/jobs', body) })
      expect(response.status).toBe(400)
      expect(await response.json()).toMatchObject({ error: { param: 'type', code: 'unsupported_job_type' } })
    })
  })

  it('answers 429 with retry-after when full, and takes work again once a slot frees', async () => {
    const gated = await start({ MOAT_RUNNER_CAPACITY: '2', MOAT_RUNNER_HEARTBEAT_MS: '2500' })
    for (const id of ['job_1', 'job_2']) {
      expect((await signedPost(world.runner.url, '/jobs', verifyDispatch(id, [FILE]))).status).toBe(202)
    }
    const full = await signedPost(world.runner.url, '/jobs', verifyDispatch('job_3', [FILE]))
    expect(full.status).toBe(429)
    expect(full.headers.get('retry-after')).toBe('3')
    expect(((await full.json()) as { error: { code: string } }).error.code).toBe('runner_full')

    await waitFor(() => gated.calls.length === 2)
    gated.finish('job_1')
    await waitFor(() => world.edge.results.length === 1)
    await waitFor(() => world.runner.inFlight === 1)
    expect((await resend(verifyDispatch('job_3', [FILE]))).status).toBe(202)
    await waitFor(() => gated.calls.length === 3)
    expect(gated.calls).toEqual(['job_1#1', 'job_2#1', 'job_3#1'])
  })

  it('answers a repeated dispatch of a running attempt with 202 without running it twice', async () => {
    const gated = await start({ MOAT_RUNNER_CAPACITY: '1' })
    const dispatch = verifyDispatch('job_1', [FILE])
    expect((await signedPost(world.runner.url, '/jobs', dispatch)).status).toBe(202)
    await waitFor(() => gated.calls.length === 1)
    const again = await resend(dispatch)
    expect(again.status).toBe(202)
    expect(await again.json()).toEqual({ accepted: true })
    gated.finish('job_1')
    await waitFor(() => world.edge.results.length === 1)
    await sleep(50)
    expect(gated.calls).toEqual(['job_1#1'])
    expect(world.edge.results).toHaveLength(1)
  })

  it('lets a later attempt replace the running one, and refuses an earlier one', async () => {
    const gated = await start({ MOAT_RUNNER_CAPACITY: '1' })
    expect((await signedPost(world.runner.url, '/jobs', verifyDispatch('job_1', [FILE], 1))).status).toBe(202)
    await waitFor(() => gated.calls.length === 1)
    expect((await signedPost(world.runner.url, '/jobs', verifyDispatch('job_1', [FILE], 2))).status).toBe(202)
    await waitFor(() => gated.calls.length === 2)
    const outdated = await resend(verifyDispatch('job_1', [FILE], 1))
    expect(outdated.status).toBe(409)
    expect(((await outdated.json()) as { error: { code: string } }).error.code).toBe('attempt_superseded')
    gated.finish('job_1')
    await waitFor(() => world.edge.results.length === 1)
    await sleep(50)
    expect(world.edge.results.map((entry) => entry.report.attempt)).toEqual([2])
  })

  it('cancels a running job, which then reports nothing', async () => {
    const gated = await start()
    expect((await signedPost(world.runner.url, '/jobs', verifyDispatch('job_1', [FILE]))).status).toBe(202)
    await waitFor(() => gated.calls.length === 1)
    const response = await signedPost(world.runner.url, '/jobs/job_1/cancel', '')
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ cancelled: true })
    await waitFor(() => world.runner.inFlight === 0)
    await sleep(50)
    expect(world.edge.results).toEqual([])
    expect(world.edge.releases).toEqual([])
  })

  it('answers 404 when cancelling a job it does not run', async () => {
    const gated = await start()
    const unknown = await signedPost(world.runner.url, '/jobs/job_404/cancel', '')
    expect(unknown.status).toBe(404)
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe('job_not_found')

    expect((await signedPost(world.runner.url, '/jobs', verifyDispatch('job_1', [FILE], 2))).status).toBe(202)
    await waitFor(() => gated.calls.length === 1)
    const otherAttempt = await signedPost(world.runner.url, '/jobs/job_1/cancel', { attempt: 1 })
    expect(otherAttempt.status).toBe(404)
    expect(world.runner.inFlight).toBe(1)
    expect((await signedPost(world.runner.url, '/jobs/job_1/cancel', { attempt: 2 })).status).toBe(200)
    await waitFor(() => world.runner.inFlight === 0)
  })

  it('requires a signature to cancel', async () => {
    const gated = await start()
    expect((await signedPost(world.runner.url, '/jobs', verifyDispatch('job_1', [FILE]))).status).toBe(202)
    await waitFor(() => gated.calls.length === 1)
    const response = await signedPost(world.runner.url, '/jobs/job_1/cancel', '', { secret: 'wrong-secret' })
    expect(response.status).toBe(401)
    expect(world.runner.inFlight).toBe(1)
    gated.finish('job_1')
  })

  it('answers unknown routes with the error envelope', async () => {
    await start()
    const response = await fetch(`${world.runner.url}/nope`)
    expect(response.status).toBe(404)
    expect(await response.json()).toEqual({
      error: { message: 'no such route', type: 'not_found_error', param: null, code: 'route_not_found' },
    })
  })
})
