import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createArtifactCache, type ArtifactCache } from '../../src/gpu-runner/artifact-cache.ts'
import { createByteRateLimiter } from '../../src/gpu-runner/byte-rate-limiter.ts'
import { createEdgeClient } from '../../src/gpu-runner/edge-client.ts'
import { startFakeEdge, type FakeEdge } from './support/fake-edge.ts'
import { addArtifact, FAST_RETRY, SECRET, sha256 } from './support/fixtures.ts'

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name))
}

describe('artifact cache', () => {
  let edge: FakeEdge
  let dir: string
  const cacheWith = (bytesPerSecond = 0): ArtifactCache =>
    createArtifactCache({
      dir,
      edge: createEdgeClient({ edgeUrl: edge.url, secret: SECRET, retry: FAST_RETRY }),
      limiter: createByteRateLimiter({ bytesPerSecond }),
    })

  beforeEach(async () => {
    edge = await startFakeEdge(SECRET)
    dir = await mkdtemp(join(tmpdir(), 'moat-cache-test-'))
  })
  afterEach(async () => {
    await edge.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('stores a verified download under its hash and reports bytes as they arrive', async () => {
    const size = 4 * 1024 * 1024
    const ref = addArtifact(edge, 'model.onnx', size)
    const seen: number[] = []
    const outcome = await cacheWith().fetchVerified(ref, { onBytes: (bytes) => seen.push(bytes) })
    const path = join(dir, 'sha256', ref.sha256)
    expect(outcome).toEqual({ status: 'verified', path, sha256: ref.sha256, size, cached: false })
    expect(sha256(await readFile(path))).toBe(ref.sha256)
    expect(seen.length).toBeGreaterThan(1)
    expect(seen).toEqual([...seen].sort((a, b) => a - b))
    expect(seen.at(-1)).toBe(size)
    expect(await filesUnder(dir)).toEqual([path])
  })

  it('serves a cached file without downloading it again', async () => {
    const ref = addArtifact(edge, 'model.onnx', 5000)
    const cache = cacheWith()
    await cache.fetchVerified(ref)
    const second = await cache.fetchVerified(ref)
    expect(second).toMatchObject({ status: 'verified', cached: true, sha256: ref.sha256 })
    expect(edge.artifactRequests).toEqual([ref.artifact_key])
    // Another cache over the same directory (a restarted runner) trusts it too.
    expect(await cacheWith().fetchVerified(ref)).toMatchObject({ status: 'verified', cached: true })
    expect(edge.artifactRequests).toHaveLength(1)
  })

  it('reports a mismatch and keeps nothing when the bytes hash differently', async () => {
    const ref = addArtifact(edge, 'model.onnx', 5000)
    const tampered = randomBytes(5000)
    edge.artifacts.set(ref.artifact_key, tampered)
    const outcome = await cacheWith().fetchVerified(ref)
    expect(outcome).toEqual({ status: 'mismatch', sha256: sha256(tampered), size: 5000 })
    expect(await filesUnder(dir)).toEqual([])
  })

  it('stops reading when the edge sends more bytes than the artifact has', async () => {
    const ref = addArtifact(edge, 'model.onnx', 3000)
    const flood = 16 * 1024 * 1024
    edge.artifacts.set(ref.artifact_key, randomBytes(flood))
    const outcome = await cacheWith().fetchVerified(ref)
    expect(outcome).toMatchObject({ status: 'mismatch', sha256: null })
    // It stops at the first chunk past the size, long before the end.
    const { size } = outcome as { size: number }
    expect(size).toBeGreaterThan(3000)
    expect(size).toBeLessThan(flood / 4)
    expect(await filesUnder(dir)).toEqual([])
  })

  it('reports a missing artifact', async () => {
    const ref = addArtifact(edge, 'model.onnx', 10)
    edge.artifacts.clear()
    expect(await cacheWith().fetchVerified(ref)).toEqual({ status: 'missing' })
  })

  it('fails with artifact_unavailable when the edge keeps failing', async () => {
    const ref = addArtifact(edge, 'model.onnx', 10)
    edge.failNext('/internal/v1/artifacts/', 500, 500, 500)
    await expect(cacheWith().fetchVerified(ref)).rejects.toMatchObject({ code: 'artifact_unavailable' })
  })

  it('shares one download between concurrent callers', async () => {
    edge.chunkSize = 8192
    const ref = addArtifact(edge, 'model.onnx', 64 * 1024)
    const cache = cacheWith(256 * 1024)
    const [first, second] = await Promise.all([cache.fetchVerified(ref), cache.fetchVerified(ref)])
    expect(first).toMatchObject({ status: 'verified', cached: false })
    expect(second).toEqual(first)
    expect(edge.artifactRequests).toHaveLength(1)
  })

  it('keeps a shared download going while one caller still waits', async () => {
    edge.chunkSize = 8192
    const ref = addArtifact(edge, 'model.onnx', 64 * 1024)
    const cache = cacheWith(256 * 1024)
    const quitter = new AbortController()
    const abandoned = cache.fetchVerified(ref, { signal: quitter.signal })
    const kept = cache.fetchVerified(ref)
    quitter.abort(new Error('gave up'))
    await expect(abandoned).rejects.toThrow('gave up')
    expect(await kept).toMatchObject({ status: 'verified' })
    expect(edge.artifactRequests).toHaveLength(1)
  })

  it('abandons a download nobody waits for and leaves no temporary file', async () => {
    edge.chunkSize = 8192
    const ref = addArtifact(edge, 'model.onnx', 256 * 1024)
    const cache = cacheWith(64 * 1024)
    const controller = new AbortController()
    const seen: number[] = []
    const fetching = cache.fetchVerified(ref, { signal: controller.signal, onBytes: (bytes) => seen.push(bytes) })
    while (seen.length === 0) await new Promise((resolve) => setTimeout(resolve, 5))
    controller.abort(new Error('cancelled'))
    await expect(fetching).rejects.toThrow('cancelled')
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(await filesUnder(dir)).toEqual([])
  })

  it('slows downloads to MOAT_RUNNER_MAX_BYTES_PER_SECOND', async () => {
    edge.chunkSize = 8192
    const ref = addArtifact(edge, 'model.onnx', 96 * 1024)
    const fastStarted = performance.now()
    await cacheWith().fetchVerified(ref)
    const fast = performance.now() - fastStarted

    await rm(dir, { recursive: true, force: true })
    const cappedStarted = performance.now()
    await cacheWith(128 * 1024).fetchVerified(ref)
    const capped = performance.now() - cappedStarted
    // 96 KiB at 128 KiB/s takes 750 ms.
    expect(capped).toBeGreaterThanOrEqual(700)
    expect(capped).toBeLessThan(2000)
    expect(fast).toBeLessThan(300)
  })
})
