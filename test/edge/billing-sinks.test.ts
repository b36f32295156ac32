import { env } from 'cloudflare:workers'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { buildUsageEvent } from '../../src/shared/usage-event.ts'
import { call, createTenant, deliver, json, type Tenant } from './helpers.ts'

afterEach(() => vi.restoreAllMocks())

const DAY = 86_400_000

async function createSink(tenant: Tenant, provider: string, credential = 'sk_test_123') {
  const res = await call('/v1/billing/sinks', {
    key: tenant.adminKey,
    body: { provider, url: `http://127.0.0.1:9/${provider}`, credential, customer: `cust_${provider}` },
  })
  expect(res.status).toBe(201)
  return json(res)
}

async function usage(tenant: Tenant, count: number, at = Date.now() - 60_000) {
  const events = []
  for (let i = 0; i < count; i++) {
    events.push(await buildUsageEvent({ tenantId: tenant.tenantId, keyId: null, requestId: `req_${tenant.tenantId}_${at}_${i}`, meter: 'requests', value: 1 }, at + i))
  }
  return events
}

type Captured = { url: string; headers: Record<string, string>; body: string }

function provider(status = 200) {
  const requests: Captured[] = []
  vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
    const request = new Request(input as RequestInfo, init as RequestInit)
    requests.push({ url: request.url, headers: Object.fromEntries(request.headers), body: await request.text() })
    return new Response('{}', { status })
  })
  return requests
}

// Captures the delivery ids the drain queues while usage is recorded.
async function recordAndCollect(events: unknown[]) {
  const sent = vi.spyOn(env.SINKS, 'send')
  await deliver('moat-usage', events)
  const ids = sent.mock.calls.map(([message]) => message.delivery_id)
  sent.mockRestore()
  return ids
}

describe('billing sinks', () => {
  it('stores the credential sealed and never returns it', async () => {
    const tenant = await createTenant()
    const sink = await createSink(tenant, 'stripe', 'sk_live_secret_value')
    expect(JSON.stringify(sink)).not.toContain('sk_live_secret_value')
    const row = await env.DB.prepare('SELECT * FROM billing_sinks WHERE id = ?1').bind(sink.id).first()
    expect(JSON.stringify(row)).not.toContain('sk_live_secret_value')
    const refused = await call('/v1/billing/sinks', { key: tenant.adminKey, body: { provider: 'lago', url: 'https://192.168.0.10/', credential: 'x', customer: 'c' } })
    expect(refused.status).toBe(400)
  })

  it('pushes each new event once, in batches of 100, as Stripe meter events', async () => {
    const tenant = await createTenant()
    const sink = await createSink(tenant, 'stripe')
    const events = await usage(tenant, 150)
    const deliveries = await recordAndCollect(events)
    expect(deliveries).toHaveLength(2)
    expect(await recordAndCollect(events.slice(0, 20))).toHaveLength(0)

    const requests = provider()
    await deliver('moat-sinks', deliveries.map((delivery_id) => ({ delivery_id })))
    expect(requests).toHaveLength(150)
    const first = requests[0]!
    expect(first.url).toBe('http://127.0.0.1:9/stripe/v1/billing/meter_events')
    expect(first.headers.authorization).toBe('Bearer sk_test_123')
    const form = new URLSearchParams(first.body)
    expect(form.get('event_name')).toBe('requests')
    expect(form.get('payload[stripe_customer_id]')).toBe('cust_stripe')
    expect(form.get('payload[value]')).toBe('1')
    expect(form.get('identifier')).toBe(first.headers['idempotency-key'])
    expect(new Set(requests.map((r) => new URLSearchParams(r.body).get('identifier'))).size).toBe(150)

    const log = await json(await call(`/v1/billing/sinks/${sink.id}/deliveries`, { key: tenant.adminKey }))
    expect(log.data.map((d: any) => [d.status, d.events, d.sent]).sort()).toEqual([['delivered', 100, 100], ['delivered', 50, 50]])
  })

  it('reports events outside Stripe’s window as skipped instead of dropping them', async () => {
    const tenant = await createTenant()
    const sink = await createSink(tenant, 'stripe')
    const late = await usage(tenant, 2, Date.now() - 40 * DAY)
    const deliveries = await recordAndCollect(late)
    const requests = provider()
    await deliver('moat-sinks', deliveries.map((delivery_id) => ({ delivery_id })))
    expect(requests).toHaveLength(0)
    const log = await json(await call(`/v1/billing/sinks/${sink.id}/deliveries`, { key: tenant.adminKey }))
    expect(log.data[0]).toMatchObject({ status: 'delivered', sent: 0, events: 2 })
    expect(log.data[0].skipped).toHaveLength(2)
    expect(log.data[0].skipped[0].reason).toMatch(/35-day/)
  })

  it('sends OpenMeter a CloudEvents batch and Lago an events batch', async () => {
    const tenant = await createTenant()
    await createSink(tenant, 'openmeter', 'om_token')
    await createSink(tenant, 'lago', 'lago_key')
    const deliveries = await recordAndCollect(await usage(tenant, 3))
    expect(deliveries).toHaveLength(2)
    const requests = provider()
    await deliver('moat-sinks', deliveries.map((delivery_id) => ({ delivery_id })))
    const openmeter = requests.find((r) => r.url.includes('/openmeter/'))!
    expect(openmeter.url).toBe('http://127.0.0.1:9/openmeter/api/v1/events')
    expect(openmeter.headers['content-type']).toBe('application/cloudevents-batch+json')
    const cloudEvents = JSON.parse(openmeter.body)
    expect(cloudEvents).toHaveLength(3)
    expect(cloudEvents[0]).toMatchObject({ specversion: '1.0', type: 'requests', subject: 'cust_openmeter' })
    const lago = requests.find((r) => r.url.includes('/lago/'))!
    expect(lago.url).toBe('http://127.0.0.1:9/lago/api/v1/events/batch')
    expect(lago.headers.authorization).toBe('Bearer lago_key')
    const body = JSON.parse(lago.body)
    expect(body.events).toHaveLength(3)
    expect(body.events[0]).toMatchObject({ external_subscription_id: 'cust_lago', code: 'requests' })
  })

  it('retries a failing provider, then marks the delivery failed and tells the tenant', async () => {
    const tenant = await createTenant()
    const sink = await createSink(tenant, 'lago')
    const hook = await json(await call('/v1/webhooks', { key: tenant.adminKey, body: { url: 'http://127.0.0.1:9/hook', events: ['usage.*'] } }))
    const [deliveryId] = await recordAndCollect(await usage(tenant, 1))
    provider(500)
    const outcome = await deliver('moat-sinks', [{ delivery_id: deliveryId }])
    expect(outcome.retryMessages).toHaveLength(1)
    let log = await json(await call(`/v1/billing/sinks/${sink.id}/deliveries`, { key: tenant.adminKey }))
    expect(log.data[0]).toMatchObject({ status: 'pending', attempts: 1, last_error: expect.stringMatching(/Lago answered 500/) })
    await deliver('moat-sinks-dlq', [{ delivery_id: deliveryId }], 11)
    log = await json(await call(`/v1/billing/sinks/${sink.id}/deliveries`, { key: tenant.adminKey }))
    expect(log.data[0].status).toBe('failed')
    const events = await json(await call(`/v1/webhooks/${hook.id}/deliveries`, { key: tenant.adminKey }))
    expect(events.data.map((d: any) => d.event_type)).toEqual(['usage.sink_failed'])
  })

  it('sends nothing for another tenant and nothing after the sink is deleted', async () => {
    const tenant = await createTenant()
    const other = await createTenant()
    const sink = await createSink(tenant, 'lago')
    expect(await recordAndCollect(await usage(other, 5))).toHaveLength(0)
    expect((await call(`/v1/billing/sinks/${sink.id}`, { method: 'DELETE', key: other.adminKey })).status).toBe(404)
    expect((await call(`/v1/billing/sinks/${sink.id}`, { method: 'DELETE', key: tenant.adminKey })).status).toBe(200)
    expect(await recordAndCollect(await usage(tenant, 5))).toHaveLength(0)
  })
})
