import { env } from 'cloudflare:workers'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ADMIN_TOKEN, call, createKey, createTenant, json, sentUsageEvents, type Tenant } from './helpers.ts'

afterEach(() => vi.restoreAllMocks())

async function setLimits(tenant: Tenant, limits: unknown[]) {
  return call(`/admin/tenants/${tenant.tenantId}/limits`, { method: 'PUT', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, body: { limits } })
}

describe('usage limits', () => {
  it('refuses requests past a daily limit with 429 quota_exceeded, exactly at the limit, across keys', async () => {
    const tenant = await createTenant()
    const second = await createKey(tenant)
    expect((await setLimits(tenant, [{ meter: 'requests', period: 'day', limit: 5 }])).status).toBe(200)
    const statuses = []
    for (let i = 0; i < 8; i++) statuses.push((await call('/v1/models', { key: i % 2 ? second : tenant.adminKey })).status)
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429])
    const refused = await call('/v1/models', { key: tenant.adminKey })
    expect(refused.status).toBe(429)
    const body = await json(refused)
    expect(body.error).toMatchObject({ type: 'rate_limit_error', code: 'quota_exceeded' })
    const retryAfter = Number(refused.headers.get('retry-after'))
    expect(retryAfter).toBeGreaterThan(0)
    expect(retryAfter).toBeLessThanOrEqual(86_400)
    const status = await json(await call('/v1/usage/limits', { key: tenant.adminKey }))
    expect(status.data).toEqual([{ meter: 'requests', period: 'day', limit: 5, used: 5, resets_at: expect.stringMatching(/T00:00:00.000Z$/) }])
  })

  it('gives back what is not billed: an idempotent replay does not count against the plan', async () => {
    const tenant = await createTenant()
    await setLimits(tenant, [{ meter: 'requests', period: 'day', limit: 3 }])
    const create = { key: tenant.adminKey, headers: { 'idempotency-key': 'plan-1' }, body: { name: 'm', format: 'onnx', task: 'classification' } }
    expect((await call('/v1/models', create)).status).toBe(201)
    const replay = await call('/v1/models', create)
    expect(replay.headers.get('idempotent-replayed')).toBe('true')
    // The replay is given back after its response: wait for the plan to show it.
    await vi.waitFor(async () => expect((await json(await call('/v1/usage/limits', { key: tenant.adminKey }))).data[0].used).toBe(1))
    const statuses = []
    for (let i = 0; i < 3; i++) statuses.push((await call('/v1/models', { key: tenant.adminKey })).status)
    expect(statuses).toEqual([200, 200, 429])
  })

  it('counts concurrent requests exactly', async () => {
    const tenant = await createTenant()
    await setLimits(tenant, [{ meter: 'requests', period: 'month', limit: 7 }])
    const results = await Promise.all(Array.from({ length: 20 }, () => call('/v1/models', { key: tenant.adminKey })))
    expect(results.filter((res) => res.status === 200)).toHaveLength(7)
    expect(results.filter((res) => res.status === 429)).toHaveLength(13)
  })

  it('does not bill refused requests and emits usage.quota_exceeded once per period', async () => {
    const tenant = await createTenant()
    await call('/v1/webhooks', { key: tenant.adminKey, body: { url: 'http://127.0.0.1:9/hook', events: ['usage.quota_exceeded'] } })
    await setLimits(tenant, [{ meter: 'requests', period: 'day', limit: 1 }])
    const usage = vi.spyOn(env.USAGE, 'send')
    const hooks = vi.spyOn(env.WEBHOOKS, 'send')
    await call('/v1/models', { key: tenant.adminKey })
    await call('/v1/models', { key: tenant.adminKey })
    await call('/v1/models', { key: tenant.adminKey })
    await vi.waitFor(() => expect(hooks).toHaveBeenCalledTimes(1))
    expect(sentUsageEvents(usage.mock.calls.map(([m]) => m)).filter((event) => event.meter === 'requests')).toHaveLength(1)
  })

  it('blocks new requests once a metered budget is spent', async () => {
    const tenant = await createTenant()
    await setLimits(tenant, [{ meter: 'artifacts.bytes', period: 'month', limit: 1000 }])
    const model = await json(await call('/v1/models', { key: tenant.adminKey, body: { name: 'm', format: 'safetensors', task: 'classification' } }))
    const first = await call(`/v1/models/${model.id}/versions/1/artifact`, { method: 'PUT', key: tenant.adminKey, raw: new Uint8Array(1500) })
    expect(first.status).toBe(201)
    await vi.waitFor(async () => {
      const status = await json(await call('/v1/usage/limits', { key: tenant.adminKey }))
      expect(status.data[0].used).toBe(1500)
    })
    const next = await call(`/v1/models/${model.id}/versions/2/artifact`, { method: 'PUT', key: tenant.adminKey, raw: new Uint8Array(10) })
    expect(next.status).toBe(429)
    expect((await json(next)).error.message).toMatch(/1500 of 1000 artifacts.bytes/)
  })

  it('is set by the operator only, validated, and removable', async () => {
    const tenant = await createTenant()
    const asTenant = await call(`/admin/tenants/${tenant.tenantId}/limits`, { method: 'PUT', key: tenant.adminKey, body: { limits: [] } })
    expect(asTenant.status).toBe(401)
    expect((await setLimits(tenant, [{ meter: 'bogus', period: 'day', limit: 1 }])).status).toBe(400)
    expect((await setLimits(tenant, [{ meter: 'requests', period: 'week', limit: 1 }])).status).toBe(400)
    expect((await setLimits(tenant, [{ meter: 'requests', period: 'day', limit: 1 }, { meter: 'requests', period: 'day', limit: 2 }])).status).toBe(400)
    const missing = await call('/admin/tenants/tenant_nope/limits', { method: 'PUT', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, body: { limits: [] } })
    expect(missing.status).toBe(404)
    await setLimits(tenant, [{ meter: 'requests', period: 'day', limit: 0 }])
    expect((await call('/v1/models', { key: tenant.adminKey })).status).toBe(429)
    await setLimits(tenant, [])
    expect((await call('/v1/models', { key: tenant.adminKey })).status).toBe(200)
  })
})
