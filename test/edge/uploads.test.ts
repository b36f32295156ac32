import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { bytesOf, call, createTenant, json, registerModel, sha256Hex, type Tenant } from './helpers.ts'

const MiB = 1024 * 1024

async function startUpload(tenant: Tenant, bytes: number, filename = 'model.safetensors') {
  const res = await call('/v1/uploads', { key: tenant.adminKey, body: { filename, bytes, purpose: 'model' } })
  expect(res.status).toBe(201)
  return json(res)
}

const putPart = (tenant: Tenant, id: string, part: number, bytes: Uint8Array<ArrayBuffer>) =>
  call(`/v1/uploads/${id}/parts/${part}`, { method: 'PUT', key: tenant.adminKey, raw: bytes })

describe('multipart uploads', () => {
  it('assembles ordered parts, hashes them across requests and attaches the result to a version', async () => {
    const tenant = await createTenant()
    const whole = bytesOf(11 * MiB + 123)
    const upload = await startUpload(tenant, whole.length)
    expect(upload).toMatchObject({ object: 'upload', status: 'pending', bytes: whole.length, next_part: 1 })

    const parts = [whole.slice(0, 5 * MiB), whole.slice(5 * MiB, 10 * MiB), whole.slice(10 * MiB)]
    for (const [i, part] of parts.entries()) {
      const res = await putPart(tenant, upload.id, i + 1, part)
      expect(res.status, `part ${i + 1}`).toBe(200)
    }
    const expected = await sha256Hex(whole)
    const done = await call(`/v1/uploads/${upload.id}/complete`, { key: tenant.adminKey, body: { sha256: expected } })
    expect(done.status).toBe(200)
    expect(await json(done)).toMatchObject({ status: 'completed', sha256: expected, received_bytes: whole.length })

    const modelId = await registerModel(tenant, 'big', 'safetensors')
    const attached = await call(`/v1/models/${modelId}/versions/1/files`, {
      key: tenant.adminKey,
      body: { upload_id: upload.id, name: 'model-00001-of-00001.safetensors' },
    })
    expect(attached.status).toBe(201)
    expect(await json(attached)).toMatchObject({ sha256: expected, size: whole.length })
    const row = await env.DB.prepare('SELECT artifact_key FROM model_files WHERE sha256 = ?1').bind(expected).first<{ artifact_key: string }>()
    const object = await env.ARTIFACTS.get(row!.artifact_key)
    expect(await sha256Hex(new Uint8Array(await object!.arrayBuffer()))).toBe(expected)

    const twice = await call(`/v1/models/${modelId}/versions/2/files`, { key: tenant.adminKey, body: { upload_id: upload.id, name: 'again.safetensors' } })
    expect(twice.status).toBe(409)
  })

  it('refuses parts out of order and after completion with 409', async () => {
    const tenant = await createTenant()
    const whole = bytesOf(5 * MiB + 10, 3)
    const upload = await startUpload(tenant, whole.length)
    const skip = await putPart(tenant, upload.id, 2, whole.slice(5 * MiB))
    expect(skip.status).toBe(409)
    expect((await json(skip)).error.code).toBe('part_out_of_order')
    expect((await putPart(tenant, upload.id, 1, whole.slice(0, 5 * MiB))).status).toBe(200)
    const repeat = await putPart(tenant, upload.id, 1, whole.slice(0, 5 * MiB))
    expect(repeat.status).toBe(409)
    expect((await putPart(tenant, upload.id, 2, whole.slice(5 * MiB))).status).toBe(200)
    expect((await call(`/v1/uploads/${upload.id}/complete`, { key: tenant.adminKey, body: { sha256: await sha256Hex(whole) } })).status).toBe(200)
    const late = await putPart(tenant, upload.id, 3, bytesOf(10))
    expect(late.status).toBe(409)
    expect((await json(late)).error.code).toBe('upload_not_pending')
  })

  it('answers a SHA-256 mismatch with 422 and marks nothing usable', async () => {
    const tenant = await createTenant()
    const whole = bytesOf(1000, 4)
    const upload = await startUpload(tenant, whole.length)
    expect((await putPart(tenant, upload.id, 1, whole)).status).toBe(200)
    const res = await call(`/v1/uploads/${upload.id}/complete`, { key: tenant.adminKey, body: { sha256: 'f'.repeat(64) } })
    expect(res.status).toBe(422)
    expect((await json(res)).error.code).toBe('sha256_mismatch')
    const after = await json(await call(`/v1/uploads/${upload.id}`, { key: tenant.adminKey }))
    expect(after.status).toBe('failed')
    expect(after.sha256).toBeNull()
    const modelId = await registerModel(tenant)
    const attach = await call(`/v1/models/${modelId}/versions/1/files`, { key: tenant.adminKey, body: { upload_id: upload.id, name: 'x.onnx' } })
    expect(attach.status).toBe(409)
    expect(await env.ARTIFACTS.head(`tenants/${tenant.tenantId}/uploads/${upload.id}/model.safetensors`)).toBeNull()
  })

  it('enforces part sizes and completeness', async () => {
    const tenant = await createTenant()
    const upload = await startUpload(tenant, 8 * MiB)
    const small = await putPart(tenant, upload.id, 1, bytesOf(MiB))
    expect(small.status).toBe(400)
    expect((await json(small)).error.code).toBe('invalid_part_size')
    const tooBig = await putPart(tenant, upload.id, 1, bytesOf(9 * MiB))
    expect(tooBig.status).toBe(400)
    expect((await putPart(tenant, upload.id, 1, bytesOf(5 * MiB))).status).toBe(200)
    const early = await call(`/v1/uploads/${upload.id}/complete`, { key: tenant.adminKey, body: { sha256: 'a'.repeat(64) } })
    expect(early.status).toBe(409)
    expect((await json(early)).error.code).toBe('upload_incomplete')
  })

  it('cancels a pending upload, and 404s for another tenant', async () => {
    const a = await createTenant()
    const b = await createTenant()
    const upload = await startUpload(a, 100)
    expect((await putPart(b, upload.id, 1, bytesOf(100))).status).toBe(404)
    expect((await call(`/v1/uploads/${upload.id}/cancel`, { method: 'POST', key: b.adminKey })).status).toBe(404)
    const cancelled = await call(`/v1/uploads/${upload.id}/cancel`, { method: 'POST', key: a.adminKey })
    expect((await json(cancelled)).status).toBe('cancelled')
    expect((await putPart(a, upload.id, 1, bytesOf(100))).status).toBe(409)
  })

  it('validates the creation body', async () => {
    const tenant = await createTenant()
    const res = await call('/v1/uploads', { key: tenant.adminKey, body: { filename: '../etc', bytes: 10 } })
    expect(res.status).toBe(400)
    expect((await json(res)).error.param).toBe('filename')
  })
})
