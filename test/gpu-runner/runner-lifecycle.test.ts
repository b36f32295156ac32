import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import { readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { readRunnerConfig } from '../../src/gpu-runner/config.ts'
import { createLogger } from '../../src/gpu-runner/logger.ts'
import { startRunner, type Runner } from '../../src/gpu-runner/runner.ts'
import { startFakeEdge, type FakeEdge } from './support/fake-edge.ts'
import { addArtifact, FAST_RETRY, SECRET, sha256, signedPost, verifyDispatch, waitFor } from './support/fixtures.ts'
import { healthz, resultOf, startWorld, verifyResultOf, type TestWorld } from './support/world.ts'

async function cacheFiles(cacheDir: string): Promise<string[]> {
  const entries = await readdir(cacheDir, { recursive: true, withFileTypes: true }).catch(() => [])
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name))
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

describe('runner lifecycle', () => {
  let world: TestWorld | null = null
  afterEach(async () => {
    await world?.close()
    world = null
  })

  const dispatch = async (job: ReturnType<typeof verifyDispatch>) => {
    const response = await signedPost(world!.runner.url, '/jobs', job)
    expect(response.status).toBe(202)
  }

  describe('registration', () => {
    it('registers at start and heartbeats with the same fields, listing running jobs', async () => {
      world = await startWorld({
        env: { MOAT_RUNNER_ID: 'runner-beat', MOAT_RUNNER_CAPACITY: '3', MOAT_RUNNER_MAX_BYTES_PER_SECOND: '262144' },
      })
      const { edge, runner } = world
      await waitFor(() => edge.registrations.length >= 3, 2000, 'three heartbeats')
      expect(edge.registrations[0]).toEqual({
        runner_id: 'runner-beat',
        state: 'active',
        url: runner.url,
        capacity: 3,
        in_flight: 0,
        job_types: ['verify_artifact', 'merge', 'batch_inference'],
        running: [],
      })
      expect(runner.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect(runner.url).not.toMatch(/:0$/)

      const ref = addArtifact(edge, 'big.bin', 4 * 1024 * 1024)
      await dispatch(verifyDispatch('job_beat', [ref], 4))
      await waitFor(() => edge.registrations.at(-1)?.in_flight === 1, 2000, 'a heartbeat with the running job')
      expect(edge.registrations.at(-1)).toMatchObject({ in_flight: 1, running: [{ job_id: 'job_beat', attempt: 4 }] })
      expect(edge.rejected).toEqual([])
    })

    it('heartbeats at the configured interval', async () => {
      world = await startWorld({ env: { MOAT_RUNNER_HEARTBEAT_MS: '200' } })
      await waitFor(() => world!.edge.registrations.length >= 1)
      const before = world.edge.registrations.length
      await sleep(1000)
      const beats = world.edge.registrations.length - before
      expect(beats).toBeGreaterThanOrEqual(3)
      expect(beats).toBeLessThanOrEqual(6)
    })

    it('keeps trying until the edge is up, serving meanwhile', async () => {
      const port = await freePort()
      const config = readRunnerConfig({
        MOAT_RUNNER_SECRET: SECRET,
        MOAT_EDGE_URL: `http://127.0.0.1:${port}`,
        MOAT_RUNNER_URL: 'http://127.0.0.1:0',
        MOAT_RUNNER_HEARTBEAT_MS: '100',
        MOAT_CACHE_DIR: join(tmpdir(), 'moat-runner-unused-cache'),
      })
      const logs: string[] = []
      let runner: Runner | null = null
      let edge: FakeEdge | null = null
      try {
        runner = await startRunner(config, { logger: createLogger({ write: (line) => logs.push(line) }), retry: FAST_RETRY })
        await waitFor(() => logs.some((line) => line.includes('registration with the edge failed')))
        expect((await healthz(runner)).status).toBe('ok')
        edge = await startFakeEdge(SECRET, port)
        await waitFor(() => edge!.registrations.length > 0, 3000, 'a registration once the edge is up')
        expect(edge.registrations[0]!.url).toBe(runner.url)
      } finally {
        await runner?.shutdown()
        await edge?.close()
      }
    })
  })

  describe('verify_artifact', () => {
    it('verifies every file and reports progress in bytes up to the total', async () => {
      world = await startWorld()
      const { edge } = world
      const files = [addArtifact(edge, 'model-00001.safetensors', 300_000), addArtifact(edge, 'config.json', 1_000)]
      await dispatch(verifyDispatch('job_ok', files, 2))
      await waitFor(() => resultOf(edge, 'job_ok') !== undefined)
      expect(verifyResultOf(edge, 'job_ok')).toEqual({
        verdict: 'verified',
        files: files.map((file) => ({
          name: file.name,
          expected_sha256: file.sha256,
          actual_sha256: file.sha256,
          size: file.size,
          verdict: 'verified',
        })),
      })
      expect(resultOf(edge, 'job_ok')!.attempt).toBe(2)
      const progress = edge.progress.filter((entry) => entry.jobId === 'job_ok').map((entry) => entry.report)
      expect(progress.length).toBeGreaterThanOrEqual(1)
      expect(progress.every((report) => report.unit === 'bytes' && report.total === 301_000 && report.attempt === 2)).toBe(true)
      expect(progress.at(-1)!.done).toBe(301_000)
      const dones = progress.map((report) => report.done)
      expect(dones).toEqual([...dones].sort((a, b) => a - b))
    })

    it('throttles progress to about four reports a second', async () => {
      world = await startWorld({ env: { MOAT_RUNNER_MAX_BYTES_PER_SECOND: String(1024 * 1024) } })
      const { edge } = world
      const ref = addArtifact(edge, 'model.onnx', 1024 * 1024)
      const started = Date.now()
      await dispatch(verifyDispatch('job_slow', [ref]))
      await waitFor(() => resultOf(edge, 'job_slow') !== undefined, 5000)
      const seconds = (Date.now() - started) / 1000
      const progress = edge.progress.filter((entry) => entry.jobId === 'job_slow').map((entry) => entry.report)
      expect(seconds).toBeGreaterThanOrEqual(0.9)
      expect(progress.length).toBeGreaterThanOrEqual(2)
      expect(progress.length).toBeLessThanOrEqual(Math.ceil(seconds * 4) + 2)
      expect(progress.at(-1)).toMatchObject({ done: ref.size, total: ref.size })
    })

    it('reports a mismatch, and keeps no file whose hash differs', async () => {
      world = await startWorld()
      const { edge, cacheDir } = world
      const good = addArtifact(edge, 'config.json', 500)
      const bad = addArtifact(edge, 'weights.bin', 20_000)
      const served = randomBytes(20_000)
      edge.artifacts.set(bad.artifact_key, served)
      await dispatch(verifyDispatch('job_bad', [good, bad]))
      await waitFor(() => resultOf(edge, 'job_bad') !== undefined)
      const result = verifyResultOf(edge, 'job_bad')
      expect(result.verdict).toBe('mismatch')
      expect(result.files[1]).toEqual({
        name: 'weights.bin',
        expected_sha256: bad.sha256,
        actual_sha256: sha256(served),
        size: 20_000,
        verdict: 'mismatch',
      })
      expect(await cacheFiles(cacheDir)).toEqual([join(cacheDir, 'sha256', good.sha256)])
    })

    it('reports a missing file, and mismatch as worse than missing', async () => {
      world = await startWorld()
      const { edge } = world
      const present = addArtifact(edge, 'config.json', 500)
      const absent = { name: 'gone.bin', artifact_key: 'models/m1/v1/gone.bin', sha256: 'b'.repeat(64), size: 10 }
      await dispatch(verifyDispatch('job_missing', [present, absent]))
      await waitFor(() => resultOf(edge, 'job_missing') !== undefined)
      const result = verifyResultOf(edge, 'job_missing')
      expect(result.verdict).toBe('missing')
      expect(result.files[1]).toEqual({
        name: 'gone.bin',
        expected_sha256: 'b'.repeat(64),
        actual_sha256: null,
        size: 0,
        verdict: 'missing',
      })

      const changed = addArtifact(edge, 'changed.bin', 100)
      edge.artifacts.set(changed.artifact_key, randomBytes(100))
      await dispatch(verifyDispatch('job_both', [absent, changed]))
      await waitFor(() => resultOf(edge, 'job_both') !== undefined)
      expect(verifyResultOf(edge, 'job_both').verdict).toBe('mismatch')
    })

    it('uses the cached copy the second time', async () => {
      world = await startWorld()
      const { edge } = world
      const ref = addArtifact(edge, 'model.onnx', 50_000)
      await dispatch(verifyDispatch('job_first', [ref]))
      await waitFor(() => resultOf(edge, 'job_first') !== undefined)
      await dispatch(verifyDispatch('job_second', [ref]))
      await waitFor(() => resultOf(edge, 'job_second') !== undefined)
      expect(verifyResultOf(edge, 'job_second').verdict).toBe('verified')
      expect(edge.artifactRequests).toEqual([ref.artifact_key])
      const progress = edge.progress.filter((entry) => entry.jobId === 'job_second')
      expect(progress.at(-1)!.report).toMatchObject({ done: 50_000, total: 50_000 })
    })

    it('fails with artifact_unavailable when the edge cannot serve a file', async () => {
      world = await startWorld()
      const { edge } = world
      const ref = addArtifact(edge, 'model.onnx', 100)
      edge.failNext('/internal/v1/artifacts/', 500, 500, 500)
      await dispatch(verifyDispatch('job_down', [ref]))
      await waitFor(() => resultOf(edge, 'job_down') !== undefined)
      expect(resultOf(edge, 'job_down')).toMatchObject({
        attempt: 1,
        status: 'failed',
        error: { code: 'artifact_unavailable', message: expect.stringContaining('models/m1/v1/model.onnx') },
      })
    })

    it('retries the result report after a 5xx', async () => {
      world = await startWorld()
      const { edge } = world
      const ref = addArtifact(edge, 'model.onnx', 100)
      edge.failNext('/internal/v1/jobs/job_retry/result', 503)
      await dispatch(verifyDispatch('job_retry', [ref]))
      await waitFor(() => resultOf(edge, 'job_retry') !== undefined)
      expect(edge.results.filter((entry) => entry.jobId === 'job_retry')).toHaveLength(1)
    })

    it('holds a finished job until the edge takes its result, however long the edge is down', async () => {
      world = await startWorld()
      const { edge } = world
      const ref = addArtifact(edge, 'model.onnx', 100)
      // Two full rounds of three tries each fail before the edge recovers.
      edge.failNext('/internal/v1/jobs/job_held/result', 503, 503, 503, 502, 502, 502)
      await dispatch(verifyDispatch('job_held', [ref]))
      await waitFor(() => edge.registrations.at(-1)?.running.some((job) => job.job_id === 'job_held') === true)
      await waitFor(() => resultOf(edge, 'job_held') !== undefined)
      expect(edge.results.filter((entry) => entry.jobId === 'job_held')).toHaveLength(1)
      await waitFor(() => world!.runner.inFlight === 0)
    })

    it('drops a result the edge refuses', async () => {
      world = await startWorld()
      const { edge } = world
      const ref = addArtifact(edge, 'model.onnx', 100)
      edge.failNext('/internal/v1/jobs/job_refused/result', 409)
      await dispatch(verifyDispatch('job_refused', [ref]))
      await waitFor(() => world!.logs.some((line) => line.includes('edge refused the result')))
      await waitFor(() => world!.runner.inFlight === 0)
      await sleep(150)
      expect(resultOf(edge, 'job_refused')).toBeUndefined()
    })
  })

  describe('stopping jobs', () => {
    const slowWorld = () => startWorld({ env: { MOAT_RUNNER_MAX_BYTES_PER_SECOND: String(256 * 1024) } })

    it('aborts a job the heartbeat calls stale, and reports nothing for it', async () => {
      world = await slowWorld()
      const { edge, cacheDir } = world
      const ref = addArtifact(edge, 'big.bin', 8 * 1024 * 1024)
      await dispatch(verifyDispatch('job_stale', [ref], 3))
      await waitFor(() => edge.progress.some((entry) => entry.jobId === 'job_stale' && entry.report.done > 0))
      edge.stale = [{ job_id: 'job_stale', attempt: 3 }]
      await waitFor(() => world!.runner.inFlight === 0, 2000, 'the stale job to stop')
      const progressAtStop = edge.progress.length
      await sleep(300)
      expect(resultOf(edge, 'job_stale')).toBeUndefined()
      expect(edge.releases).toEqual([])
      expect(edge.progress).toHaveLength(progressAtStop)
      expect(await cacheFiles(cacheDir)).toEqual([])
    })

    it('ignores a stale entry for another attempt', async () => {
      world = await slowWorld()
      const { edge } = world
      const ref = addArtifact(edge, 'big.bin', 8 * 1024 * 1024)
      await dispatch(verifyDispatch('job_kept', [ref], 2))
      edge.stale = [{ job_id: 'job_kept', attempt: 1 }]
      const seen = edge.registrations.length
      await waitFor(() => edge.registrations.length >= seen + 3)
      expect(world.runner.inFlight).toBe(1)
    })

    it('cancel stops the download and leaves nothing in the cache', async () => {
      world = await slowWorld()
      const { edge, cacheDir } = world
      const ref = addArtifact(edge, 'big.bin', 8 * 1024 * 1024)
      await dispatch(verifyDispatch('job_cancel', [ref]))
      await waitFor(() => edge.progress.some((entry) => entry.jobId === 'job_cancel' && entry.report.done > 0))
      expect((await signedPost(world.runner.url, '/jobs/job_cancel/cancel', '')).status).toBe(200)
      await waitFor(() => world!.runner.inFlight === 0)
      await sleep(100)
      expect(resultOf(edge, 'job_cancel')).toBeUndefined()
      expect(await cacheFiles(cacheDir)).toEqual([])
    })
  })

  describe('shutdown', () => {
    it('refuses new jobs, lets short jobs finish within the grace period and releases long ones', async () => {
      world = await startWorld({
        env: {
          MOAT_RUNNER_MAX_BYTES_PER_SECOND: String(512 * 1024),
          MOAT_RUNNER_SHUTDOWN_GRACE_MS: '1500',
          // Slow beats, so only the beat that shutdown sends at once can say `draining` in time.
          MOAT_RUNNER_HEARTBEAT_MS: '5000',
        },
      })
      const { edge, runner } = world
      const long = addArtifact(edge, 'long.bin', 16 * 1024 * 1024)
      const short = addArtifact(edge, 'short.bin', 8 * 1024)
      await waitFor(() => edge.registrations.length > 0)
      await dispatch(verifyDispatch('job_long', [long], 5))
      await dispatch(verifyDispatch('job_short', [short], 1))

      const started = Date.now()
      const beatsBefore = edge.registrations.length
      const stopped = runner.shutdown()
      expect(runner.shutdown()).toBe(stopped)
      const refused = await signedPost(runner.url, '/jobs', verifyDispatch('job_late', [short]))
      expect(refused.status).toBe(503)
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('runner_draining')
      expect((await healthz(runner)).draining).toBe(true)
      // The edge hears of the drain at once, not a heartbeat later.
      await waitFor(() => edge.registrations.slice(beatsBefore).some((beat) => beat.state === 'draining'), 1000, 'a draining heartbeat')
      expect(edge.registrations.slice(beatsBefore).every((beat) => beat.state === 'draining')).toBe(true)

      await stopped
      const elapsed = Date.now() - started
      expect(elapsed).toBeGreaterThanOrEqual(1400)
      expect(elapsed).toBeLessThan(4000)
      expect(verifyResultOf(edge, 'job_short').verdict).toBe('verified')
      expect(resultOf(edge, 'job_long')).toBeUndefined()
      expect(edge.releases).toEqual([{ jobId: 'job_long', report: { attempt: 5, reason: 'runner shutting down' } }])
      expect(runner.inFlight).toBe(0)
      await expect(fetch(`${runner.url}/healthz`)).rejects.toThrow()
    })

    it('returns as soon as the running jobs are done', async () => {
      world = await startWorld({ env: { MOAT_RUNNER_SHUTDOWN_GRACE_MS: '10000' } })
      const { edge, runner } = world
      const ref = addArtifact(edge, 'small.bin', 64 * 1024)
      await dispatch(verifyDispatch('job_small', [ref]))
      const started = Date.now()
      await runner.shutdown()
      expect(Date.now() - started).toBeLessThan(2000)
      expect(verifyResultOf(edge, 'job_small').verdict).toBe('verified')
      expect(edge.releases).toEqual([])
    })
  })

  it('never logs the secret or a signature', async () => {
    world = await startWorld()
    const { edge } = world
    const ref = addArtifact(edge, 'model.onnx', 1000)
    await dispatch(verifyDispatch('job_logged', [ref]))
    await waitFor(() => resultOf(edge, 'job_logged') !== undefined)
    await signedPost(world.runner.url, '/jobs', verifyDispatch('job_x', [ref]), { secret: 'wrong-secret' })
    await world.runner.shutdown()
    const logs = world.logs.join('\n')
    expect(world.logs.length).toBeGreaterThan(3)
    for (const line of world.logs) expect(() => JSON.parse(line)).not.toThrow()
    expect(logs).not.toContain(SECRET)
    expect(logs).not.toMatch(/v1=[0-9a-f]{64}/)
  })
})
