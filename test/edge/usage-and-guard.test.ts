import { env } from 'cloudflare:workers'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { sendUsageMessage } from '../../src/edge/usage/usage-queue.ts'
import { buildUsageEvent } from '../../src/shared/usage-event.ts'
import { scheduledMaintenance } from '../../src/edge/runners/sweep.ts'
import { call, createTenant, deliver, json, sentObservations, sentUsageEvents } from './helpers.ts'

afterEach(() => vi.restoreAllMocks())

async function usageRows(tenantId: string) {
  const { results } = await env.DB.prepare('SELECT meter, value, request_id FROM usage_events WHERE tenant_id = ?1 ORDER BY meter')
    .bind(tenantId)
    .all<{ meter: string; value: number; request_id: string }>()
  return results
}

describe('usage events', () => {
  it('meters every served request through the usage queue with a deterministic id', async () => {
    const tenant = await createTenant()
    const sent = vi.spyOn(env.USAGE, 'send')
    const res = await call('/v1/models', { key: tenant.adminKey })
    const requestId = res.headers.get('x-request-id')!
    await vi.waitFor(() => expect(sentUsageEvents(sent.mock.calls.map(([m]) => m))).toHaveLength(1))
    const event = sentUsageEvents(sent.mock.calls.map(([m]) => m))[0]!
    expect(event).toMatchObject({ tenant_id: tenant.tenantId, meter: 'requests', value: 1, request_id: requestId })
    expect(event.id).toBe((await buildUsageEvent({ tenantId: tenant.tenantId, keyId: event.key_id, requestId, meter: 'requests', value: 1 })).id)

    await deliver('moat-usage', [event])
    await deliver('moat-usage', [event, event])
    expect(await usageRows(tenant.tenantId)).toEqual([{ meter: 'requests', value: 1, request_id: requestId }])
  })

  it('does not bill an idempotent replay twice', async () => {
    const tenant = await createTenant()
    const sent = vi.spyOn(env.USAGE, 'send')
    const request = { key: tenant.adminKey, headers: { 'idempotency-key': 'u-1' }, body: { name: 'm', format: 'onnx', task: 'classification' } }
    await call('/v1/models', request)
    await call('/v1/models', request)
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(sentUsageEvents(sent.mock.calls.map(([m]) => m)).filter((e) => e.meter === 'requests')).toHaveLength(1)
  })

  it('sends a request\'s whole usage and its observation as one queue message', async () => {
    const tenant = await createTenant()
    const sent = vi.spyOn(env.USAGE, 'send')
    const res = await call('/v1/moderations', { key: tenant.adminKey, body: { input: ['first text', 'second'] } })
    expect(res.status).toBe(200)
    await vi.waitFor(() => expect(sent).toHaveBeenCalled())
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(sent).toHaveBeenCalledTimes(1)
    const message = sent.mock.calls[0]![0] as unknown as { type: string }
    expect(message.type).toBe('request_usage')
    expect(Object.fromEntries(sentUsageEvents([message]).map((e) => [e.meter, e.value]))).toEqual({ requests: 1, 'moderation.inputs': 2, 'moderation.chars': 16 })
    expect(sentObservations([message])).toMatchObject([{ tenant_id: tenant.tenantId, outcome: 'served', request_id: res.headers.get('x-request-id') }])
    // Delivered twice, it counts once.
    await deliver('moat-usage', [message, message])
    expect((await usageRows(tenant.tenantId)).map((row: { meter: string; value: number }) => [row.meter, row.value]).sort()).toEqual([
      ['moderation.chars', 16],
      ['moderation.inputs', 2],
      ['requests', 1],
    ])
  })

  it('writes a request\'s usage straight to D1 when the queue refuses it, once', async () => {
    const tenant = await createTenant()
    vi.spyOn(env.USAGE, 'send').mockRejectedValue(new Error('queue down'))
    const res = await call('/v1/moderations', { key: tenant.adminKey, body: { input: 'hello there' } })
    expect(res.status).toBe(200)
    await vi.waitFor(async () => expect(await usageRows(tenant.tenantId)).toHaveLength(3))
    const observed = await env.DB.prepare('SELECT count(*) AS n FROM request_observations WHERE tenant_id = ?1').bind(tenant.tenantId).first<{ n: number }>()
    expect(observed!.n).toBe(1)
  })

  it('writes the event straight to the ledger when the queue refuses it', async () => {
    const tenant = await createTenant()
    vi.spyOn(env.USAGE, 'send').mockRejectedValue(new Error('queue down'))
    const event = await buildUsageEvent({ tenantId: tenant.tenantId, keyId: null, requestId: 'req_x', meter: 'requests', value: 1 })
    await sendUsageMessage(env, event)
    await sendUsageMessage(env, event)
    expect(await usageRows(tenant.tenantId)).toHaveLength(1)
  })

  it('keeps malformed usage messages as dead letters and records the rest of the batch', async () => {
    const tenant = await createTenant()
    const good = await buildUsageEvent({ tenantId: tenant.tenantId, keyId: null, requestId: 'req_y', meter: 'requests', value: 2 })
    const result = await deliver('moat-usage', [good, { meter: 'x' }])
    expect(result.ackAll).toBe(true)
    expect(await usageRows(tenant.tenantId)).toEqual([{ meter: 'requests', value: 2, request_id: 'req_y' }])
    expect(await env.DB.prepare(`SELECT 1 AS one FROM dead_letters WHERE queue = 'moat-usage' AND body = ?1`).bind(JSON.stringify({ meter: 'x' })).first()).toEqual({ one: 1 })
  })

  it('meters uploaded bytes', async () => {
    const tenant = await createTenant()
    const sent = vi.spyOn(env.USAGE, 'send')
    const model = await json(await call('/v1/models', { key: tenant.adminKey, body: { name: 'b', format: 'safetensors', task: 'causal-lm' } }))
    await call(`/v1/models/${model.id}/versions/1/artifact`, { method: 'PUT', key: tenant.adminKey, raw: new Uint8Array(777) })
    await vi.waitFor(() => expect(sentUsageEvents(sent.mock.calls.map(([m]) => m)).some((e) => e.meter === 'artifacts.bytes' && e.value === 777)).toBe(true))
  })
})

describe('maintenance', () => {
  it('purges expired idempotency records and old runner signatures', async () => {
    const old = Date.now() - 2 * 24 * 60 * 60 * 1000
    await env.DB.prepare(`INSERT INTO idempotency_records (scope, key, fingerprint, state, created_at) VALUES ('s', 'old', 'f', 'complete', ?1)`).bind(old).run()
    await env.DB.prepare(`INSERT INTO runner_signatures (signature, seen_at) VALUES ('v1=old', ?1)`).bind(old).run()
    await scheduledMaintenance(env)
    expect(await env.DB.prepare(`SELECT 1 FROM idempotency_records WHERE key = 'old'`).first()).toBeNull()
    expect(await env.DB.prepare(`SELECT 1 FROM runner_signatures WHERE signature = 'v1=old'`).first()).toBeNull()
  })
})

describe('upload expiry', () => {
  it('aborts and marks expired pending uploads, leaving others alone', async () => {
    const tenant = await createTenant()
    const created = await json(await call('/v1/uploads', { key: tenant.adminKey, body: { filename: 'f.bin', bytes: 10 } }))
    const fresh = await json(await call('/v1/uploads', { key: tenant.adminKey, body: { filename: 'g.bin', bytes: 10 } }))
    await env.DB.prepare('UPDATE uploads SET expires_at = 0 WHERE id = ?1').bind(created.id).run()
    await scheduledMaintenance(env)
    expect((await json(await call(`/v1/uploads/${created.id}`, { key: tenant.adminKey }))).status).toBe('expired')
    expect((await json(await call(`/v1/uploads/${fresh.id}`, { key: tenant.adminKey }))).status).toBe('pending')
    const part = await call(`/v1/uploads/${created.id}/parts/1`, { method: 'PUT', key: tenant.adminKey, raw: new Uint8Array(10) })
    expect(part.status).toBe(409)
  })
})

describe('the ClientGuard Durable Object', () => {
  it('is declared with SQLite storage and answers over RPC', async () => {
    const stub = env.CLIENT_GUARD.get(env.CLIENT_GUARD.idFromName('key_test'))
    expect(await stub.schemaVersion()).toBe(2)
  })
})
