import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { uploadArtifactFile } from '../../src/gpu-runner/artifact-upload.ts'
import { artifactPath, createEdgeClient, EdgeRequestError, type EdgeClient } from '../../src/gpu-runner/edge-client.ts'
import { startFakeEdge, type FakeEdge } from './support/fake-edge.ts'
import { FAST_RETRY, SECRET, sha256 } from './support/fixtures.ts'

const registration = {
  runner_id: 'runner_test',
  state: 'active' as const,
  url: 'http://127.0.0.1:9999',
  capacity: 2,
  in_flight: 1,
  job_types: ['verify_artifact' as const],
  running: [{ job_id: 'job_1', attempt: 3 }],
}

describe('edge client', () => {
  let edge: FakeEdge
  let client: EdgeClient

  beforeEach(async () => {
    edge = await startFakeEdge(SECRET)
    client = createEdgeClient({ edgeUrl: edge.url, secret: SECRET, retry: FAST_RETRY })
  })
  afterEach(async () => {
    await edge.close()
  })

  it('registers with a signed request and reads the stale jobs', async () => {
    edge.heartbeatMs = 1234
    edge.stale = [{ job_id: 'job_1', attempt: 3 }]
    const reply = await client.register(registration)
    expect(reply).toEqual({ runner_id: 'runner_test', heartbeat_ms: 1234, stale: [{ job_id: 'job_1', attempt: 3 }] })
    expect(edge.registrations).toEqual([registration])
    expect(edge.rejected).toEqual([])
  })

  it('is refused by an edge with another secret, and says why', async () => {
    const wrong = createEdgeClient({ edgeUrl: edge.url, secret: 'another-secret', retry: FAST_RETRY })
    const failure = await wrong.register(registration).catch((error: unknown) => error)
    expect(failure).toBeInstanceOf(EdgeRequestError)
    expect((failure as EdgeRequestError).status).toBe(401)
    expect((failure as Error).message).toContain('signature mismatch')
    expect(edge.registrations).toEqual([])
  })

  it('retries a result on 5xx and delivers it once', async () => {
    edge.failNext('/internal/v1/jobs/job_1/result', 503, 500)
    await client.reportResult('job_1', { attempt: 1, status: 'failed', error: { message: 'boom', code: 'job_failed' } })
    expect(edge.results).toEqual([
      { jobId: 'job_1', report: { attempt: 1, status: 'failed', error: { message: 'boom', code: 'job_failed' } } },
    ])
  })

  it('gives up after the configured tries', async () => {
    edge.failNext('/internal/v1/jobs/job_1/release', 500, 500, 500, 500)
    await expect(client.release('job_1', { attempt: 1, reason: 'bye' })).rejects.toMatchObject({ status: 500 })
    expect(edge.releases).toEqual([])
    // Three tries used three injected failures: the next call meets the fourth, then gets through.
    await client.release('job_1', { attempt: 1, reason: 'bye' })
    expect(edge.releases).toHaveLength(1)
  })

  it('takes a 4xx as final', async () => {
    edge.failNext('/internal/v1/jobs/job_1/result', 409, 409)
    await expect(
      client.reportResult('job_1', { attempt: 1, status: 'succeeded', result: {} }),
    ).rejects.toMatchObject({ status: 409 })
    // Only one of the two injected 409s was used.
    await expect(
      client.reportResult('job_1', { attempt: 1, status: 'succeeded', result: {} }),
    ).rejects.toMatchObject({ status: 409 })
    expect(edge.results).toEqual([])
  })

  it('does not retry progress', async () => {
    edge.failNext('/internal/v1/jobs/job_1/progress', 503)
    await expect(client.reportProgress('job_1', { attempt: 1, done: 1, total: 2, unit: 'bytes' })).rejects.toMatchObject({
      status: 503,
    })
    expect(edge.progress).toEqual([])
  })

  it('retries network errors a bounded number of times', async () => {
    await edge.close()
    const started = Date.now()
    const failure = await client.reportResult('job_1', { attempt: 1, status: 'succeeded', result: {} }).catch((error: unknown) => error)
    expect(failure).toBeInstanceOf(EdgeRequestError)
    expect((failure as EdgeRequestError).status).toBeNull()
    expect((failure as Error).message).toContain('ECONNREFUSED')
    expect(Date.now() - started).toBeLessThan(2000)
    edge = await startFakeEdge(SECRET)
  })

  it('fetches artifacts by key, one encoded path segment per part', async () => {
    const key = 'models/m 1/v#1/weights?.bin'
    edge.artifacts.set(key, new Uint8Array([1, 2, 3]))
    expect(artifactPath(key)).toBe('/internal/v1/artifacts/models/m%201/v%231/weights%3F.bin')
    const response = await client.openArtifact(key)
    expect(new Uint8Array(await response!.arrayBuffer())).toEqual(new Uint8Array([1, 2, 3]))
    expect(edge.artifactRequests).toEqual([key])
    expect(edge.rejected).toEqual([])
  })

  it('answers null for a missing artifact and retries a failing one', async () => {
    expect(await client.openArtifact('models/nope')).toBeNull()
    edge.artifacts.set('models/a', new Uint8Array([9]))
    edge.failNext('/internal/v1/artifacts/models/a', 502)
    const response = await client.openArtifact('models/a')
    expect(new Uint8Array(await response!.arrayBuffer())).toEqual(new Uint8Array([9]))
  })

  it('refuses keys whose segments URL parsing would rewrite', async () => {
    for (const key of ['models/../secrets', 'models/./a', 'models//a', '']) {
      await expect(client.openArtifact(key)).rejects.toThrow('invalid artifact key')
    }
    expect(edge.artifactRequests).toEqual([])
  })

  describe('uploads', () => {
    let dir: string
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'moat-upload-test-'))
    })
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true })
    })

    it('uploads a file in ordered parts of part_size, each signed with its own hash', async () => {
      const bytes = randomBytes(2 * 1024 + 512)
      const path = join(dir, 'out.safetensors')
      await writeFile(path, bytes)
      const completed = await uploadArtifactFile(client, { jobId: 'job_9', filename: 'out.safetensors', path })
      expect(completed).toEqual({ artifact_key: 'outputs/job_9/out.safetensors', sha256: sha256(bytes), size: bytes.length })
      const upload = edge.uploads.get('upload_1')!
      expect(upload).toMatchObject({ job_id: 'job_9', filename: 'out.safetensors', bytes: bytes.length, completed: true })
      expect(upload.parts.map((part) => part.length)).toEqual([1024, 1024, 512])
      expect(Buffer.concat(upload.parts).equals(bytes)).toBe(true)
      expect(edge.rejected).toEqual([])
    })

    it('sends a part again after a 5xx', async () => {
      const bytes = randomBytes(3000)
      const path = join(dir, 'out.bin')
      await writeFile(path, bytes)
      edge.failNext('/internal/v1/artifacts/uploads/upload_1/parts/2', 500)
      const completed = await uploadArtifactFile(client, { jobId: 'job_9', filename: 'out.bin', path })
      expect(completed.sha256).toBe(sha256(bytes))
      expect(edge.uploads.get('upload_1')!.parts.map((part) => part.length)).toEqual([1024, 1024, 952])
    })
  })
})
