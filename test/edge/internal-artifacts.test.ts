import { env, exports } from 'cloudflare:workers'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { signRunnerRequest } from '../../src/shared/runner-signature.ts'
import { bytesOf, call, createTenant, json, putArtifact, registerModel, RUNNER_SECRET, sha256Hex, signedCall } from './helpers.ts'

afterEach(() => vi.restoreAllMocks())

const MiB = 1024 * 1024

async function putSignedPart(uploadId: string, part: number, bytes: Uint8Array<ArrayBuffer>, signedHash?: string) {
  const path = `/internal/v1/artifacts/uploads/${uploadId}/parts/${part}`
  const headers = await signRunnerRequest({ secret: RUNNER_SECRET, method: 'PUT', path, bodySha256: signedHash ?? (await sha256Hex(bytes)) })
  return exports.default.fetch(`http://moat.test${path}`, { method: 'PUT', headers, body: bytes })
}

async function aJob() {
  const tenant = await createTenant()
  const modelId = await registerModel(tenant)
  await putArtifact(tenant, modelId, '1', bytesOf(64))
  const job = await json(await call('/v1/jobs', { key: tenant.adminKey, body: { type: 'verify_artifact', model: modelId } }))
  return { tenant, job }
}

describe('runner artifact traffic', () => {
  it('streams a stored artifact to a signed request, and 404s a missing one', async () => {
    const tenant = await createTenant()
    const modelId = await registerModel(tenant)
    const bytes = bytesOf(100_000, 5)
    await putArtifact(tenant, modelId, '1', bytes)
    const row = await env.DB.prepare('SELECT artifact_key FROM model_files WHERE tenant_id = ?1').bind(tenant.tenantId).first<{ artifact_key: string }>()
    const path = `/internal/v1/artifacts/${row!.artifact_key.split('/').map(encodeURIComponent).join('/')}`
    const res = await (await signedCall(path)).send()
    expect(res.status).toBe(200)
    expect(res.headers.get('content-length')).toBe(String(bytes.length))
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(bytes)
    expect((await (await signedCall(`${path}-gone`)).send()).status).toBe(404)
    const unsigned = await exports.default.fetch(`http://moat.test${path}`)
    expect(unsigned.status).toBe(401)
  })

  it('takes a job output through signed multipart upload into the job’s tenant', async () => {
    const { tenant, job } = await aJob()
    const output = bytesOf(6 * MiB + 5, 8)
    const created = await (await signedCall('/internal/v1/artifacts/uploads', { job_id: job.id, filename: 'merged.safetensors', bytes: output.length })).send()
    expect(created.status).toBe(201)
    const { id, part_size } = await json(created)
    expect(part_size).toBeGreaterThanOrEqual(5 * MiB)

    const first = output.slice(0, 5 * MiB)
    const tampered = await putSignedPart(id, 1, first, 'c'.repeat(64))
    expect(tampered.status).toBe(401)
    expect((await putSignedPart(id, 1, first)).status).toBe(200)
    expect((await putSignedPart(id, 2, output.slice(5 * MiB))).status).toBe(200)

    const sha256 = await sha256Hex(output)
    const done = await (await signedCall(`/internal/v1/artifacts/uploads/${id}/complete`, { sha256 })).send()
    expect(done.status).toBe(200)
    const body = await json(done)
    expect(body).toMatchObject({ sha256, size: output.length })
    expect(body.artifact_key.startsWith(`tenants/${tenant.tenantId}/uploads/${id}/`)).toBe(true)
    const object = await env.ARTIFACTS.get(body.artifact_key)
    expect(await sha256Hex(new Uint8Array(await object!.arrayBuffer()))).toBe(sha256)

    // The output is the tenant's: it can attach it to a model version.
    const modelId = await registerModel(tenant, 'merged', 'safetensors')
    const attached = await call(`/v1/models/${modelId}/versions/1/files`, { key: tenant.adminKey, body: { upload_id: id, name: 'model.safetensors' } })
    expect(attached.status).toBe(201)
  })

  it('refuses output uploads for unknown jobs and a public upload on the internal part route', async () => {
    const res = await (await signedCall('/internal/v1/artifacts/uploads', { job_id: 'job_missing', filename: 'x.bin', bytes: 10 })).send()
    expect(res.status).toBe(404)
    const tenant = await createTenant()
    const upload = await json(await call('/v1/uploads', { key: tenant.adminKey, body: { filename: 'p.bin', bytes: 10 } }))
    expect((await putSignedPart(upload.id, 1, bytesOf(10))).status).toBe(404)
  })
})
