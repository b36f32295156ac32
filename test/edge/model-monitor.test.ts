import { env } from 'cloudflare:workers'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { call, createTenant, json } from './helpers.ts'

afterEach(() => vi.restoreAllMocks())

const HOUR = 3_600_000
const t0 = Date.UTC(2026, 10, 27, 10)

function observation(label: string, confidence: number) {
  return { latencyMs: 4, error: false, predictions: [label], topConfidences: [confidence] }
}

describe('model monitoring and drift', () => {
  it('takes the first window as reference and raises model.drift once when a later window shifts', async () => {
    const tenant = await createTenant()
    const hook = await json(await call('/v1/webhooks', { key: tenant.adminKey, body: { url: 'http://127.0.0.1:9/hook', events: ['model.*'] } }))
    const identity = { tenantId: tenant.tenantId, modelId: 'model_x', version: '1' }
    const stub = env.MODEL_MONITOR.get(env.MODEL_MONITOR.idFromName(`mv_${crypto.randomUUID()}`))
    for (let i = 0; i < 200; i++) await stub.record(identity, observation(String(i % 10), 0.95), t0 + i)
    for (let i = 0; i < 200; i++) await stub.record(identity, observation(String(i % 10), 0.94), t0 + HOUR + i)
    for (let i = 0; i < 200; i++) await stub.record(identity, observation(i % 5 ? '7' : '1', 0.55), t0 + 2 * HOUR + i)
    await stub.record(identity, { latencyMs: 900, error: true, predictions: [], topConfidences: [] }, t0 + 3 * HOUR)

    const report = await stub.report()
    expect(report.reference).toBe(new Date(t0).toISOString())
    const [latest, shifted, stable] = report.windows
    expect(latest).toMatchObject({ requests: 1, errors: 1, error_rate: 1, latency_ms: { p50: 1000 } })
    expect(stable!.drift).toMatchObject({ drifted: false })
    expect(stable!.drift!.psi_classes).toBeLessThan(0.05)
    expect(shifted!.drift).toMatchObject({ drifted: true })
    expect(shifted!.drift!.psi_classes).toBeGreaterThan(0.2)

    const deliveries = await json(await call(`/v1/webhooks/${hook.id}/deliveries`, { key: tenant.adminKey }))
    expect(deliveries.data.map((d: { event_type: string }) => d.event_type)).toEqual(['model.drift'])
  })

  it('serves metrics for a version, and 404 for another tenant', async () => {
    const tenant = await createTenant()
    const other = await createTenant()
    const model = await json(await call('/v1/models', { key: tenant.adminKey, body: { name: 'mm', format: 'safetensors', task: 'regression' } }))
    await call(`/v1/models/${model.id}/versions/1/artifact`, { method: 'PUT', key: tenant.adminKey, raw: new Uint8Array(8) })
    const res = await call(`/v1/models/${model.id}/versions/1/metrics`, { key: tenant.adminKey })
    expect(res.status).toBe(200)
    expect(await json(res)).toEqual({ window_seconds: 3600, reference: null, windows: [] })
    expect((await call(`/v1/models/${model.id}/versions/1/metrics`, { key: other.adminKey })).status).toBe(404)
  })
})
