import { env } from 'cloudflare:workers'
import { Webhook } from 'standardwebhooks'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { consumeQueue } from '../../src/edge/queues/consume.ts'
import { bytesOf, call, createTenant, deliver, json, putArtifact, registerModel, type Tenant } from './helpers.ts'

afterEach(() => vi.restoreAllMocks())

async function createWebhook(tenant: Tenant, events: string[], url = 'http://127.0.0.1:9/hook') {
  const res = await call('/v1/webhooks', { key: tenant.adminKey, body: { url, events } })
  expect(res.status).toBe(201)
  return json(res)
}

// A job of this tenant that reaches `failed` through the dead-letter path.
async function failedJob(tenant: Tenant) {
  await env.DB.prepare(`UPDATE runners SET status = 'lost'`).run()
  const modelId = await registerModel(tenant, `m-${crypto.randomUUID().slice(0, 6)}`)
  await putArtifact(tenant, modelId, '1', bytesOf(16))
  const job = await json(await call('/v1/jobs', { key: tenant.adminKey, body: { type: 'verify_artifact', model: modelId } }))
  await deliver('moat-jobs', [{ job_id: job.id }])
  await deliver('moat-jobs-dlq', [{ job_id: job.id }], 9)
  return job
}

function receiver(status = 200) {
  const received: { url: string; headers: Record<string, string>; body: string }[] = []
  vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
    const request = new Request(input as RequestInfo, init as RequestInit)
    received.push({ url: request.url, headers: Object.fromEntries(request.headers), body: await request.text() })
    return new Response(status === 204 ? null : 'ok', { status })
  })
  return received
}

describe('webhooks', () => {
  it('shows the secret once and keeps it sealed at rest', async () => {
    const tenant = await createTenant()
    const hook = await createWebhook(tenant, ['job.*'])
    expect(hook.secret).toMatch(/^whsec_/)
    const row = await env.DB.prepare('SELECT * FROM webhooks WHERE id = ?1').bind(hook.id).first<Record<string, string>>()
    expect(JSON.stringify(row)).not.toContain(hook.secret.slice(6))
    const listed = await json(await call('/v1/webhooks', { key: tenant.adminKey }))
    expect(listed.data).toHaveLength(1)
    expect(JSON.stringify(listed)).not.toContain(hook.secret)
  })

  it('refuses private, metadata and non-https URLs and unknown events with 400', async () => {
    const tenant = await createTenant()
    for (const url of ['https://10.0.0.2/x', 'https://169.254.169.254/latest', 'http://example.com/x', 'https://user:pw@example.com/', 'https://[fd00::1]/']) {
      const res = await call('/v1/webhooks', { key: tenant.adminKey, body: { url, events: ['job.*'] } })
      expect(res.status, url).toBe(400)
      expect((await json(res)).error.param).toBe('url')
    }
    const bad = await call('/v1/webhooks', { key: tenant.adminKey, body: { url: 'https://example.com/x', events: ['jobs.done'] } })
    expect(bad.status).toBe(400)
    expect((await json(bad)).error.param).toBe('events.0')
  })

  it('delivers a job event once, signed per Standard Webhooks', async () => {
    const tenant = await createTenant()
    const hook = await createWebhook(tenant, ['job.*'])
    const other = await createWebhook(tenant, ['usage.*'])
    const sent = vi.spyOn(env.WEBHOOKS, 'send')
    const job = await failedJob(tenant)
    await deliver('moat-jobs-dlq', [{ job_id: job.id }], 9)
    expect(sent).toHaveBeenCalledTimes(1)
    const deliveryId = sent.mock.calls[0]![0].delivery_id

    const received = receiver()
    await deliver('moat-webhooks', [{ delivery_id: deliveryId }, { delivery_id: deliveryId }])
    expect(received).toHaveLength(1)
    const payload = new Webhook(hook.secret).verify(received[0]!.body, received[0]!.headers) as any
    expect(payload).toMatchObject({ type: 'job.failed', data: { id: job.id, status: 'failed' } })
    expect(received[0]!.headers['webhook-id']).toMatch(/^evt_/)

    const log = await json(await call(`/v1/webhooks/${hook.id}/deliveries`, { key: tenant.adminKey }))
    expect(log.data).toEqual([expect.objectContaining({ id: deliveryId, status: 'delivered', attempts: 1, last_status: 200, event_type: 'job.failed' })])
    expect((await json(await call(`/v1/webhooks/${other.id}/deliveries`, { key: tenant.adminKey }))).data).toEqual([])
  })

  it('retries a failing endpoint with backoff, fails after the dead-letter queue, and redelivers by hand', async () => {
    const tenant = await createTenant()
    const hook = await createWebhook(tenant, ['job.failed'])
    const sent = vi.spyOn(env.WEBHOOKS, 'send')
    await failedJob(tenant)
    const deliveryId = sent.mock.calls[0]![0].delivery_id

    receiver(503)
    const retry = vi.fn()
    const message = { id: 'm', timestamp: new Date(), attempts: 2, body: { delivery_id: deliveryId }, ack: vi.fn(), retry }
    await consumeQueue({ queue: 'moat-webhooks', messages: [message], ackAll: vi.fn(), retryAll: vi.fn() } as unknown as MessageBatch, env)
    expect(retry).toHaveBeenCalledWith({ delaySeconds: 10 })
    await deliver('moat-webhooks-dlq', [{ delivery_id: deliveryId }], 11)
    let log = await json(await call(`/v1/webhooks/${hook.id}/deliveries`, { key: tenant.adminKey }))
    expect(log.data[0]).toMatchObject({ status: 'failed', attempts: 1, last_status: 503, last_error: 'endpoint answered 503' })

    const again = await call(`/v1/webhooks/${hook.id}/deliveries/${deliveryId}/redeliver`, { method: 'POST', key: tenant.adminKey })
    expect(again.status).toBe(202)
    vi.restoreAllMocks()
    const received = receiver(204)
    await deliver('moat-webhooks', [{ delivery_id: deliveryId }])
    expect(received).toHaveLength(1)
    log = await json(await call(`/v1/webhooks/${hook.id}/deliveries`, { key: tenant.adminKey }))
    expect(log.data[0]).toMatchObject({ status: 'delivered', attempts: 2 })
  })

  it('stops delivering to a deleted webhook and hides it from other tenants', async () => {
    const tenant = await createTenant()
    const stranger = await createTenant()
    const hook = await createWebhook(tenant, ['*'])
    expect((await call(`/v1/webhooks/${hook.id}`, { method: 'DELETE', key: stranger.adminKey })).status).toBe(404)
    expect((await call(`/v1/webhooks/${hook.id}/deliveries`, { key: stranger.adminKey })).status).toBe(404)
    const sent = vi.spyOn(env.WEBHOOKS, 'send')
    await failedJob(tenant)
    const deliveryId = sent.mock.calls[0]![0].delivery_id
    expect((await call(`/v1/webhooks/${hook.id}`, { method: 'DELETE', key: tenant.adminKey })).status).toBe(200)
    const received = receiver()
    await deliver('moat-webhooks', [{ delivery_id: deliveryId }])
    expect(received).toHaveLength(0)
    const row = await env.DB.prepare('SELECT status, last_error FROM webhook_deliveries WHERE id = ?1').bind(deliveryId).first()
    expect(row).toEqual({ status: 'failed', last_error: 'the webhook was deleted' })
  })
})

