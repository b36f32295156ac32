import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { ADMIN_TOKEN, call, createTenant, json } from './helpers.ts'

describe('Idempotency-Key on creating POSTs', () => {
  it('replays the first response and creates once', async () => {
    const tenant = await createTenant()
    const request = { key: tenant.adminKey, body: { name: 'once', format: 'onnx', task: 'classification' }, headers: { 'idempotency-key': 'k-1' } }
    const first = await call('/v1/models', request)
    const second = await call('/v1/models', request)
    expect(first.status).toBe(201)
    expect(second.status).toBe(201)
    expect(second.headers.get('idempotent-replayed')).toBe('true')
    expect(await json(second)).toEqual(await json(first))
    const { results } = await env.DB.prepare(`SELECT id FROM models WHERE tenant_id = ?1 AND name = 'once'`).bind(tenant.tenantId).all()
    expect(results).toHaveLength(1)
  })

  it('refuses the same key with a different body', async () => {
    const tenant = await createTenant()
    const headers = { 'idempotency-key': 'k-2' }
    expect((await call('/v1/models', { key: tenant.adminKey, headers, body: { name: 'a', format: 'onnx', task: 'classification' } })).status).toBe(201)
    const res = await call('/v1/models', { key: tenant.adminKey, headers, body: { name: 'b', format: 'onnx', task: 'classification' } })
    expect(res.status).toBe(422)
    expect((await json(res)).error.code).toBe('idempotency_key_reused')
  })

  it('scopes keys per API key, so tenants never see each other’s replays', async () => {
    const a = await createTenant()
    const b = await createTenant()
    const headers = { 'idempotency-key': 'shared' }
    const body = { name: 'same', format: 'onnx', task: 'classification' }
    const fromA = await json(await call('/v1/models', { key: a.adminKey, headers, body }))
    const fromB = await json(await call('/v1/models', { key: b.adminKey, headers, body }))
    expect(fromB.id).not.toBe(fromA.id)
  })

  it('does not store a failure, so the fixed request can reuse the key', async () => {
    const tenant = await createTenant()
    const headers = { 'idempotency-key': 'k-3' }
    const bad = await call('/v1/jobs', { key: tenant.adminKey, headers, body: { type: 'verify_artifact', model: 'model_missing' } })
    expect(bad.status).toBe(404)
    const again = await call('/v1/jobs', { key: tenant.adminKey, headers, body: { type: 'verify_artifact', model: 'model_missing' } })
    expect(again.headers.get('idempotent-replayed')).toBeNull()
  })

  it('answers 409 while the first request is still in progress', async () => {
    const tenant = await createTenant()
    const keyRow = await env.DB.prepare(`SELECT id FROM api_keys WHERE tenant_id = ?1`).bind(tenant.tenantId).first<{ id: string }>()
    const body = { name: 'slow', format: 'onnx', task: 'classification' }
    const fingerprintSource = `POST\n/v1/models\n${JSON.stringify(body)}`
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(fingerprintSource)))
    const fingerprint = Array.from(digest, (x) => x.toString(16).padStart(2, '0')).join('')
    await env.DB.prepare(`INSERT INTO idempotency_records (scope, key, fingerprint, state, created_at) VALUES (?1, 'k-4', ?2, 'pending', ?3)`)
      .bind(`key:${keyRow!.id}`, fingerprint, Date.now())
      .run()
    const res = await call('/v1/models', { key: tenant.adminKey, headers: { 'idempotency-key': 'k-4' }, body })
    expect(res.status).toBe(409)
    expect((await json(res)).error.code).toBe('idempotency_in_progress')
  })

  it('replays tenant creation by the operator', async () => {
    const headers = { authorization: `Bearer ${ADMIN_TOKEN}`, 'idempotency-key': 'tenant-1' }
    const first = await json(await call('/admin/tenants', { headers, body: { name: 'replayed' } }))
    const second = await json(await call('/admin/tenants', { headers, body: { name: 'replayed' } }))
    expect(second.tenant.id).toBe(first.tenant.id)
    const { results } = await env.DB.prepare(`SELECT id FROM tenants WHERE name = 'replayed'`).all()
    expect(results).toHaveLength(1)
  })
})
