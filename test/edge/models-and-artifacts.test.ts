import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { bytesOf, call, createTenant, json, putArtifact, registerModel, sha256Hex } from './helpers.ts'

describe('models', () => {
  it('registers, lists with pagination and gets a model', async () => {
    const tenant = await createTenant()
    const ids = []
    for (const name of ['m1', 'm2', 'm3']) ids.push(await registerModel(tenant, name))
    const page1 = await json(await call('/v1/models?limit=2', { key: tenant.adminKey }))
    expect(page1.object).toBe('list')
    expect(page1.data.map((m: { id: string }) => m.id)).toEqual([ids[2], ids[1]])
    expect(page1.has_more).toBe(true)
    const page2 = await json(await call(`/v1/models?limit=2&after=${ids[1]}`, { key: tenant.adminKey }))
    expect(page2.data.map((m: { id: string }) => m.id)).toEqual([ids[0]])
    expect(page2.has_more).toBe(false)
    const model = await json(await call(`/v1/models/${ids[0]}`, { key: tenant.adminKey }))
    expect(model).toMatchObject({ id: ids[0], name: 'm1', format: 'safetensors', task: 'classification', versions: [] })
  })

  it('refuses a duplicate model name with 409', async () => {
    const tenant = await createTenant()
    await registerModel(tenant, 'dup')
    const res = await call('/v1/models', { key: tenant.adminKey, body: { name: 'dup', format: 'onnx', task: 'classification' } })
    expect(res.status).toBe(409)
  })

  it("answers another tenant's model as 404, on every route", async () => {
    const a = await createTenant()
    const b = await createTenant()
    const modelId = await registerModel(a)
    await putArtifact(a, modelId, '1', bytesOf(10))
    for (const [method, path] of [
      ['GET', `/v1/models/${modelId}`],
      ['GET', `/v1/models/${modelId}/versions/1`],
      ['PUT', `/v1/models/${modelId}/versions/2/artifact`],
      ['PATCH', `/v1/models/${modelId}/versions/1`],
    ] as const) {
      const res = await call(path, {
        method,
        key: b.adminKey,
        ...(method === 'PUT' ? { raw: bytesOf(10) } : method === 'PATCH' ? { body: { stage: 'production' } } : {}),
      })
      expect(res.status, `${method} ${path}`).toBe(404)
    }
    const { results } = await env.DB.prepare('SELECT version FROM model_versions WHERE model_id = ?1').bind(modelId).all()
    expect(results).toEqual([{ version: '1' }])
  })
})

describe('artifact PUT', () => {
  it('streams a file to R2 with the SHA-256 computed on the way', async () => {
    const tenant = await createTenant()
    const modelId = await registerModel(tenant)
    const bytes = bytesOf(3 * 1024 * 1024 + 17)
    const res = await putArtifact(tenant, modelId, '1', bytes)
    expect(res.status).toBe(201)
    const file = await json(res)
    expect(file).toMatchObject({ name: 'model.safetensors', size: bytes.length, sha256: await sha256Hex(bytes), verification: 'unverified' })
    const row = await env.DB.prepare('SELECT artifact_key FROM model_files WHERE sha256 = ?1').bind(file.sha256).first<{ artifact_key: string }>()
    const object = await env.ARTIFACTS.get(row!.artifact_key)
    expect(new Uint8Array(await object!.arrayBuffer())).toEqual(bytes)
    const version = await json(await call(`/v1/models/${modelId}/versions/1`, { key: tenant.adminKey }))
    expect(version).toMatchObject({ version: '1', stage: 'staging', verification: 'unverified' })
    expect(version.files).toHaveLength(1)
  })

  it('checks the SHA-256 the client names, and keeps nothing on a mismatch', async () => {
    const tenant = await createTenant()
    const modelId = await registerModel(tenant)
    const bytes = bytesOf(4096)
    const wrong = await call(`/v1/models/${modelId}/versions/1/files/weights.bin`, {
      method: 'PUT',
      key: tenant.adminKey,
      raw: bytes,
      headers: { 'x-moat-sha256': '0'.repeat(64) },
    })
    expect(wrong.status).toBe(422)
    expect((await json(wrong)).error.code).toBe('sha256_mismatch')
    const { results } = await env.DB.prepare(`SELECT id FROM model_files WHERE name = 'weights.bin' AND tenant_id = ?1`).bind(tenant.tenantId).all()
    expect(results).toHaveLength(0)
    const listed = await env.ARTIFACTS.list({ prefix: `tenants/${tenant.tenantId}/` })
    expect(listed.objects).toHaveLength(0)
    const right = await call(`/v1/models/${modelId}/versions/1/files/weights.bin`, {
      method: 'PUT',
      key: tenant.adminKey,
      raw: bytes,
      headers: { 'x-moat-sha256': await sha256Hex(bytes) },
    })
    expect(right.status).toBe(201)
  })

  it('keeps files immutable: a second write of a name is 409', async () => {
    const tenant = await createTenant()
    const modelId = await registerModel(tenant)
    expect((await putArtifact(tenant, modelId, '1', bytesOf(100))).status).toBe(201)
    const again = await putArtifact(tenant, modelId, '1', bytesOf(100, 2))
    expect(again.status).toBe(409)
    expect((await json(again)).error.code).toBe('file_exists')
  })

  it('refuses a body over the limit with 413 before reading it', async () => {
    const tenant = await createTenant()
    const modelId = await registerModel(tenant)
    const res = await putArtifact(tenant, modelId, '1', new Uint8Array(90 * 1024 * 1024 + 1))
    expect(res.status).toBe(413)
    expect((await json(res)).error.code).toBe('request_too_large')
  })

  it('refuses unsafe file and version names with 400', async () => {
    const tenant = await createTenant()
    const modelId = await registerModel(tenant)
    for (const path of [`/v1/models/${modelId}/versions/1/files/bad%24name`, `/v1/models/${modelId}/versions/1/files/.%2F..`, `/v1/models/${modelId}/versions/a%2Fb/artifact`]) {
      const res = await call(path, { method: 'PUT', key: tenant.adminKey, raw: bytesOf(10) })
      expect(res.status, path).toBe(400)
    }
  })
})

describe('stages', () => {
  it('promotes a version to production and archives the previous one', async () => {
    const tenant = await createTenant()
    const modelId = await registerModel(tenant)
    await putArtifact(tenant, modelId, '1', bytesOf(10))
    await putArtifact(tenant, modelId, '2', bytesOf(10, 2))
    const promote = (version: string) =>
      call(`/v1/models/${modelId}/versions/${version}`, { method: 'PATCH', key: tenant.adminKey, body: { stage: 'production' } })
    expect((await json(await promote('1'))).stage).toBe('production')
    expect((await json(await promote('2'))).stage).toBe('production')
    const model = await json(await call(`/v1/models/${modelId}`, { key: tenant.adminKey }))
    const stages = Object.fromEntries(model.versions.map((v: { version: string; stage: string }) => [v.version, v.stage]))
    expect(stages).toEqual({ '1': 'archived', '2': 'production' })
  })

  it('refuses an unknown stage with 400', async () => {
    const tenant = await createTenant()
    const modelId = await registerModel(tenant)
    await putArtifact(tenant, modelId, '1', bytesOf(10))
    const res = await call(`/v1/models/${modelId}/versions/1`, { method: 'PATCH', key: tenant.adminKey, body: { stage: 'live' } })
    expect(res.status).toBe(400)
    expect((await json(res)).error.param).toBe('stage')
  })
})
