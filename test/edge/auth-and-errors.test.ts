import { env, exports } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { ADMIN_TOKEN, call, createKey, createTenant, json } from './helpers.ts'

function expectEnvelope(body: any, type: string, code?: string) {
  expect(Object.keys(body)).toEqual(['error'])
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type'])
  expect(body.error.type).toBe(type)
  expect(typeof body.error.message).toBe('string')
  if (code) expect(body.error.code).toBe(code)
}

describe('operator and health', () => {
  it('answers healthz with a request id', async () => {
    const res = await call('/healthz')
    expect(res.status).toBe(200)
    expect(res.headers.get('x-request-id')).toMatch(/^req_[0-9a-z]{26}$/)
    expect(await json(res)).toEqual({ status: 'ok', database: 'ok' })
  })

  it('mints a fresh request id even when the client sends one', async () => {
    const res = await call('/healthz', { headers: { 'x-request-id': 'req_chosen_by_client' } })
    expect(res.headers.get('x-request-id')).not.toBe('req_chosen_by_client')
  })

  it('serves a generated OpenAPI document listing the public routes', async () => {
    const doc = await json(await call('/openapi.json'))
    expect(doc.openapi).toBe('3.1.0')
    for (const path of ['/v1/keys', '/v1/models', '/v1/models/{id}/versions/{version}/artifact', '/v1/uploads/{id}/parts/{part}', '/v1/jobs/{id}/events', '/admin/tenants']) {
      expect(doc.paths).toHaveProperty([path])
    }
    expect(Object.keys(doc.paths).some((p: string) => p.startsWith('/internal'))).toBe(false)
  })

  it('refuses tenant creation without the admin token', async () => {
    const res = await call('/admin/tenants', { body: { name: 'x' }, headers: { authorization: 'Bearer wrong' } })
    expect(res.status).toBe(401)
    expectEnvelope(await json(res), 'authentication_error')
    const { results } = await env.DB.prepare(`SELECT id FROM tenants WHERE name = 'x'`).all()
    expect(results).toHaveLength(0)
  })

  it('answers unknown routes with a 404 envelope', async () => {
    const res = await call('/v1/nothing-here', { key: (await createTenant()).adminKey })
    expect(res.status).toBe(404)
    expectEnvelope(await json(res), 'not_found_error', 'route_not_found')
    expect(res.headers.get('x-request-id')).toMatch(/^req_/)
  })
})

describe('bearer auth', () => {
  it('refuses a missing, malformed or unknown key with 401', async () => {
    for (const authorization of [undefined, 'Basic abc', 'Bearer nope', `Bearer moat_sk_${'A'.repeat(40)}`]) {
      const res = await call('/v1/models', authorization ? { headers: { authorization } } : {})
      expect(res.status).toBe(401)
      expect(res.headers.get('www-authenticate')).toBe('Bearer')
      expectEnvelope(await json(res), 'authentication_error', 'invalid_api_key')
    }
  })

  it('stores only the SHA-256 of a key and shows the key once', async () => {
    const tenant = await createTenant()
    const created = await json(await call('/v1/keys', { key: tenant.adminKey, body: { name: 'ci', scopes: ['models:read'] } }))
    expect(created.key).toMatch(/^moat_sk_[0-9A-Za-z]{40}$/)
    expect(created.prefix).toBe(created.key.slice(0, 12))
    const row = await env.DB.prepare('SELECT * FROM api_keys WHERE id = ?1').bind(created.id).first<Record<string, string>>()
    expect(JSON.stringify(row)).not.toContain(created.key)
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(created.key)))
    expect(row!.key_hash).toBe(Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join(''))
    const listed = await json(await call('/v1/keys', { key: tenant.adminKey }))
    expect(JSON.stringify(listed)).not.toContain(created.key)
    expect(listed.data.map((k: { id: string }) => k.id)).toContain(created.id)
  })

  it('enforces scopes with 403', async () => {
    const tenant = await createTenant()
    const reader = await createKey(tenant, ['models:read'])
    expect((await call('/v1/models', { key: reader })).status).toBe(200)
    const write = await call('/v1/models', { key: reader, body: { name: 'm', format: 'onnx', task: 'classification' } })
    expect(write.status).toBe(403)
    expectEnvelope(await json(write), 'permission_error', 'insufficient_scope')
    expect((await call('/v1/keys', { key: reader })).status).toBe(403)
  })

  it('refuses a revoked key at once', async () => {
    const tenant = await createTenant()
    const key = await createKey(tenant)
    const keys = await json(await call('/v1/keys', { key: tenant.adminKey }))
    const id = keys.data.find((k: { name: string; scopes: string[] }) => !k.scopes.includes('admin')).id
    expect((await call('/v1/models', { key })).status).toBe(200)
    const revoked = await call(`/v1/keys/${id}`, { method: 'DELETE', key: tenant.adminKey })
    expect(revoked.status).toBe(200)
    expect((await json(revoked)).revoked_at).toBeTypeOf('number')
    const refused = await call('/v1/models', { key })
    expect(refused.status).toBe(401)
    expect((await json(refused)).error.message).toMatch(/revoked/)
  })

  it("answers 404 for another tenant's key id", async () => {
    const a = await createTenant('a')
    const b = await createTenant('b')
    const keys = await json(await call('/v1/keys', { key: a.adminKey }))
    const res = await call(`/v1/keys/${keys.data[0].id}`, { method: 'DELETE', key: b.adminKey })
    expect(res.status).toBe(404)
    expect((await call('/v1/models', { key: a.adminKey })).status).toBe(200)
  })
})

describe('bad input', () => {
  it('answers malformed JSON with 400', async () => {
    const tenant = await createTenant()
    const res = await call('/v1/models', {
      key: tenant.adminKey,
      raw: '{"name": ',
      method: 'POST',
      headers: { 'content-type': 'application/json' },
    })
    expect(res.status).toBe(400)
    expectEnvelope(await json(res), 'invalid_request_error')
  })

  it('names an unknown field', async () => {
    const tenant = await createTenant()
    const res = await call('/v1/models', { key: tenant.adminKey, body: { name: 'm', format: 'onnx', task: 'classification', colour: 'red' } })
    expect(res.status).toBe(400)
    const body = await json(res)
    expectEnvelope(body, 'invalid_request_error', 'unknown_field')
    expect(body.error.param).toBe('colour')
  })

  it('names an invalid field, nested too', async () => {
    const tenant = await createTenant()
    const res = await call('/v1/models', {
      key: tenant.adminKey,
      body: { name: 'm', format: 'onnx', task: 'classification', input: { shape: [1, 'x'], dtype: 'float32' } },
    })
    expect(res.status).toBe(400)
    expect((await json(res)).error.param).toBe('input.shape.1')
  })

  it('answers an oversized JSON body with 413', async () => {
    const tenant = await createTenant()
    const res = await call('/v1/models', {
      key: tenant.adminKey,
      body: { name: 'm', format: 'onnx', task: 'classification', labels: Array(120_000).fill('label-text') },
    })
    expect(res.status).toBe(413)
    expectEnvelope(await json(res), 'invalid_request_error', 'request_too_large')
  })

  it('keeps the envelope on a raw fetch without auth header helpers', async () => {
    const res = await exports.default.fetch('http://moat.test/admin/tenants', {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({}),
    })
    expect(res.status).toBe(400)
    expect((await json(res)).error.param).toBe('name')
  })
})
