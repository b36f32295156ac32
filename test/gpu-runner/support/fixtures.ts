// Values and helpers shared by the runner tests: the secret, signed requests,
// artifacts on the fake edge, polling.
import { createHash, randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ArtifactRef } from '../../../src/shared/job-types.ts'
import { signRunnerRequest } from '../../../src/shared/runner-signature.ts'
import type { JobDispatch } from '../../../src/shared/runner-wire.ts'
import type { FakeEdge } from './fake-edge.ts'

export const SECRET = 'test-runner-secret-0123456789'

export const FAST_RETRY = { attempts: 3, baseSeconds: 0.02, maxSeconds: 0.05 }

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

export async function waitFor(condition: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

// Puts random bytes on the fake edge and returns the reference a job would carry.
export function addArtifact(edge: FakeEdge, name: string, size: number, key = `models/m1/v1/${name}`): ArtifactRef {
  const bytes = randomBytes(size)
  edge.artifacts.set(key, bytes)
  return { name, artifact_key: key, sha256: sha256(bytes), size }
}

export function verifyDispatch(jobId: string, files: ArtifactRef[], attempt = 1): JobDispatch {
  return {
    job_id: jobId,
    type: 'verify_artifact',
    attempt,
    tenant_id: 'tenant_1',
    params: { model_id: 'm1', version: 'v1', files },
  }
}

export type SignedPostOptions = {
  secret?: string
  // Sign one body, send another.
  sendBody?: string
  headers?: Record<string, string>
}

export async function signedHeaders(path: string, body: string, secret = SECRET) {
  return signRunnerRequest({ secret, method: 'POST', path, body })
}

export async function signedPost(baseUrl: string, path: string, body: unknown, options: SignedPostOptions = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  const headers = options.headers ?? (await signedHeaders(path, text, options.secret))
  return fetch(`${baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: options.sendBody ?? text,
  })
}
