import { env } from 'cloudflare:workers'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { scheduledMaintenance } from '../../src/edge/runners/sweep.ts'
import { sendUsageMessage } from '../../src/edge/usage/usage-queue.ts'
import { bucketValue, latencyBucket } from '../../src/shared/traffic/latency-histogram.ts'
import { observeRequest } from '../../src/shared/traffic/request-observation.ts'
import { fetchPage, signIn } from './dashboard-browser.ts'
import { ADMIN_TOKEN, call, createTenant, deliver, sentObservations, type Tenant } from './helpers.ts'

afterEach(() => vi.restoreAllMocks())

const HOUR_MS = 3_600_000

async function countOf(sql: string, ...binds: unknown[]): Promise<number> {
  return (await env.DB.prepare(sql).bind(...binds).first<{ n: number }>())!.n
}

async function seedRollup(tenant: Tenant, hourStart: number, outcome: string, bucket: number, requests: number) {
  await env.DB.prepare(
    `INSERT INTO traffic_rollups (tenant_id, hour_start, key_id, outcome, latency_bucket, requests) VALUES (?1, ?2, 'key_a', ?3, ?4, ?5)`,
  )
    .bind(tenant.tenantId, hourStart, outcome, bucket, requests)
    .run()
}

function card(html: string, id: string): string {
  const match = new RegExp(`id="${id}"><span>[^<]*</span><strong>([^<]*)</strong>`).exec(html)
  if (!match) throw new Error(`no card ${id}`)
  return match[1]!
}

describe('request observations', () => {
  it('counts 429s without billing them: the ledger holds only the served requests, exactly, after redelivery', async () => {
    const tenant = await createTenant('traffic-quota')
    const limits = { limits: [{ meter: 'requests', period: 'day', limit: 3 }] }
    expect((await call(`/admin/tenants/${tenant.tenantId}/limits`, { method: 'PUT', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, body: limits })).status).toBe(200)
    const sent = vi.spyOn(env.USAGE, 'send')
    const statuses: number[] = []
    for (let i = 0; i < 5; i++) statuses.push((await call('/v1/models', { key: tenant.adminKey })).status)
    expect(statuses).toEqual([200, 200, 200, 429, 429])
    await vi.waitFor(() => expect(sentObservations(sent.mock.calls.map(([m]) => m))).toHaveLength(5))
    const messages = sent.mock.calls.map(([m]) => m)
    // Every message twice, as a redelivering queue would.
    await deliver('moat-usage', messages)
    await deliver('moat-usage', messages)
    expect(await countOf(`SELECT count(*) AS n FROM usage_events WHERE tenant_id = ?1`, tenant.tenantId)).toBe(3)
    expect(await countOf(`SELECT coalesce(sum(value), 0) AS n FROM usage_events WHERE tenant_id = ?1 AND meter = 'requests'`, tenant.tenantId)).toBe(3)
    expect(await countOf(`SELECT count(*) AS n FROM request_observations WHERE tenant_id = ?1`, tenant.tenantId)).toBe(5)
    expect(await countOf(`SELECT sum(requests) AS n FROM traffic_rollups WHERE tenant_id = ?1 AND outcome = 'refused'`, tenant.tenantId)).toBe(2)
    expect(await countOf(`SELECT sum(requests) AS n FROM traffic_rollups WHERE tenant_id = ?1 AND outcome = 'served'`, tenant.tenantId)).toBe(3)

    // The dashboard is outside /v1: a tenant over its quota still sees it.
    const browser = await signIn(tenant.adminKey)
    const html = await (await fetchPage('/dashboard?days=1', { cookie: browser.cookie })).text()
    expect(card(html, 'requests')).toBe('3')
    expect(card(html, 'observed')).toBe('5')
    expect(card(html, 'refused')).toBe('2 (40.0%)')
    expect(card(html, 'p50')).not.toBe('—')
  })

  it('observes refusals and client errors, not requests without a valid key', async () => {
    const tenant = await createTenant('traffic-outcomes')
    const sent = vi.spyOn(env.USAGE, 'send')
    await call('/v1/models/model_nope', { key: tenant.adminKey })
    await call('/v1/models', { key: `moat_sk_${'x'.repeat(40)}` })
    await vi.waitFor(() => expect(sentObservations(sent.mock.calls.map(([m]) => m)).length).toBeGreaterThan(0))
    await new Promise((resolve) => setTimeout(resolve, 50))
    const observed = sentObservations(sent.mock.calls.map(([m]) => m))
    expect(observed).toHaveLength(1)
    expect(observed[0]).toMatchObject({ tenant_id: tenant.tenantId, outcome: 'client_error' })
  })

  it('writes an observation straight to D1 when the queue refuses it, once', async () => {
    const tenant = await createTenant('traffic-queue-down')
    vi.spyOn(env.USAGE, 'send').mockRejectedValue(new Error('queue down'))
    const observation = observeRequest({ requestId: 'req_down', tenantId: tenant.tenantId, keyId: null, status: 200, latencyMs: 12, timestamp: Date.now() })
    await sendUsageMessage(env, observation)
    await sendUsageMessage(env, observation)
    expect(await countOf(`SELECT sum(requests) AS n FROM traffic_rollups WHERE tenant_id = ?1`, tenant.tenantId)).toBe(1)
    expect(await countOf(`SELECT count(*) AS n FROM usage_events WHERE tenant_id = ?1`, tenant.tenantId)).toBe(0)
  })

  it('keeps a malformed observation as a dead letter, out of the ledger and the rollups', async () => {
    const tenant = await createTenant('traffic-malformed')
    const bad = { type: 'request', request_id: 'req_bad', tenant_id: tenant.tenantId, key_id: null, outcome: 'great', latency_bucket: 3, timestamp: 1 }
    const billed = { ...bad, meter: 'requests', value: 1 }
    const result = await deliver('moat-usage', [bad, billed])
    expect(result.ackAll).toBe(true)
    expect(await countOf(`SELECT count(*) AS n FROM dead_letters WHERE queue = 'moat-usage' AND body LIKE '%req_bad%'`)).toBe(2)
    expect(await countOf(`SELECT count(*) AS n FROM usage_events WHERE tenant_id = ?1`, tenant.tenantId)).toBe(0)
    expect(await countOf(`SELECT count(*) AS n FROM traffic_rollups WHERE tenant_id = ?1`, tenant.tenantId)).toBe(0)
  })

  it('forgets observations after two days and keeps their rollups', async () => {
    const tenant = await createTenant('traffic-sweep')
    const old = Date.now() - 3 * 86_400_000
    const recent = Date.now()
    await deliver('moat-usage', [
      observeRequest({ requestId: 'req_old', tenantId: tenant.tenantId, keyId: null, status: 200, latencyMs: 5, timestamp: old }),
      observeRequest({ requestId: 'req_new', tenantId: tenant.tenantId, keyId: null, status: 200, latencyMs: 5, timestamp: recent }),
    ])
    await scheduledMaintenance(env)
    expect(await countOf(`SELECT count(*) AS n FROM request_observations WHERE tenant_id = ?1`, tenant.tenantId)).toBe(1)
    expect(await countOf(`SELECT sum(requests) AS n FROM traffic_rollups WHERE tenant_id = ?1`, tenant.tenantId)).toBe(2)
  })
})

describe('the overview’s 429s and p50', () => {
  it('reads p50 from the histogram of answered requests over the period, 429s left out, of this tenant only', async () => {
    const tenant = await createTenant('traffic-p50')
    const other = await createTenant('traffic-p50-other')
    const thisHour = Date.now() - (Date.now() % HOUR_MS)
    const fast = latencyBucket(100)
    const slow = latencyBucket(2000)
    await seedRollup(tenant, thisHour, 'served', fast, 6)
    await seedRollup(tenant, thisHour - HOUR_MS, 'client_error', fast, 1)
    await seedRollup(tenant, thisHour, 'served', slow, 5)
    // Fifty quick refusals would make p50 0 ms if they counted.
    await seedRollup(tenant, thisHour, 'refused', 0, 50)
    // Ten days ago: outside a 7-day period, inside a 30-day one.
    await seedRollup(tenant, thisHour - 240 * HOUR_MS, 'served', slow, 100)
    await seedRollup(other, thisHour, 'refused', 0, 999)
    const browser = await signIn(tenant.adminKey)
    const week = await (await fetchPage('/dashboard?days=7', { cookie: browser.cookie })).text()
    expect(card(week, 'observed')).toBe('62')
    expect(card(week, 'refused')).toBe('50 (80.6%)')
    expect(card(week, 'p50')).toBe(`≈ ${Math.round(bucketValue(fast))} ms`)
    expect(Math.abs(bucketValue(fast) / 100 - 1)).toBeLessThan(0.0906)
    const month = await (await fetchPage('/dashboard?days=30', { cookie: browser.cookie })).text()
    expect(card(month, 'p50')).toBe(`≈ ${Math.round(bucketValue(slow))} ms`)
    expect(month).not.toContain('999')
  })

  it('shows a dash without traffic and “< 1 ms” when the median is under a millisecond', async () => {
    const tenant = await createTenant('traffic-empty')
    const browser = await signIn(tenant.adminKey)
    const empty = await (await fetchPage('/dashboard', { cookie: browser.cookie })).text()
    expect(card(empty, 'p50')).toBe('—')
    expect(card(empty, 'refused')).toBe('0 (—)')
    await seedRollup(tenant, Date.now() - (Date.now() % HOUR_MS), 'served', 0, 3)
    const quick = await (await fetchPage('/dashboard', { cookie: browser.cookie })).text()
    expect(card(quick, 'p50')).toBe('&lt; 1 ms')
  })
})
