import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { buildUsageEvent } from '../../src/shared/usage-event.ts'
import { call, createKey, createTenant, deliver, json, type Tenant } from './helpers.ts'

const HOUR = 3_600_000
const DAY = 24 * HOUR
const day0 = Date.UTC(2026, 10, 1)

async function event(tenant: Tenant, n: number, meter: 'requests' | 'artifacts.bytes', value: number, timestamp: number, keyId: string | null = 'key_a') {
  return buildUsageEvent({ tenantId: tenant.tenantId, keyId, requestId: `req_${tenant.tenantId}_${n}`, meter, value }, timestamp)
}

// Events spread over three days, hours and two keys, delivered twice.
async function seed(tenant: Tenant) {
  const events = []
  let n = 0
  for (let day = 0; day < 3; day++) {
    for (const hour of [0, 5, 23]) {
      for (const minute of [0, 59]) {
        const at = day0 + day * DAY + hour * HOUR + minute * 60_000 + 123
        events.push(await event(tenant, ++n, 'requests', 1, at, n % 2 ? 'key_a' : 'key_b'))
        events.push(await event(tenant, ++n, 'artifacts.bytes', 1000 + n, at))
      }
    }
  }
  await deliver('moat-usage', events)
  await deliver('moat-usage', events.slice(0, 10))
  return events
}

function rawTotal(events: { meter: string; value: number; timestamp: number; key_id: string | null }[], start: number, end: number, filter: (e: any) => boolean = () => true) {
  return events.filter((e) => e.timestamp >= start && e.timestamp < end && filter(e)).reduce((sum, e) => sum + e.value, 0)
}

describe('GET /v1/usage', () => {
  it('answers exact totals for ragged ranges, per meter, key and day, despite redelivery', async () => {
    const tenant = await createTenant()
    const events = await seed(tenant)
    const start = day0 + 5 * HOUR + 30 * 60_000
    const end = day0 + 2 * DAY + 23 * HOUR + 10 * 60_000
    const res = await call(`/v1/usage?start=${new Date(start).toISOString()}&end=${Math.floor(end / 1000)}&group_by=key,day`, { key: tenant.adminKey })
    expect(res.status).toBe(200)
    const body = await json(res)
    expect(body.group_by).toEqual(['meter', 'key', 'day'])
    for (const row of body.data) {
      const dayStart = Date.parse(`${row.day}T00:00:00Z`)
      const expected = rawTotal(events, Math.max(start, dayStart), Math.min(end, dayStart + DAY), (e) => e.meter === row.meter && (e.key_id ?? null) === row.key_id)
      expect(row.value, JSON.stringify(row)).toBe(expected)
    }
    const totalRequests = body.data.filter((r: any) => r.meter === 'requests').reduce((s: number, r: any) => s + r.value, 0)
    expect(totalRequests).toBe(rawTotal(events, start, end, (e) => e.meter === 'requests'))
    expect(totalRequests).toBeGreaterThan(0)
  })

  it('groups by hour from hourly rollups', async () => {
    const tenant = await createTenant()
    const events = await seed(tenant)
    const body = await json(await call(`/v1/usage?start=${day0 / 1000}&end=${(day0 + 3 * DAY) / 1000}&group_by=hour`, { key: tenant.adminKey }))
    const requests = body.data.filter((r: any) => r.meter === 'requests')
    expect(requests).toHaveLength(9)
    expect(requests[0]).toMatchObject({ hour: '2026-11-01T00:00:00Z', value: 2, events: 2, unit: 'request' })
    expect(requests.reduce((s: number, r: any) => s + r.value, 0)).toBe(rawTotal(events, day0, day0 + 3 * DAY, (e) => e.meter === 'requests'))
  })

  it('counts a correction as a compensating event and keeps the original', async () => {
    const tenant = await createTenant()
    await seed(tenant)
    const before = await json(await call(`/v1/usage?start=${day0 / 1000}&end=${(day0 + DAY) / 1000}`, { key: tenant.adminKey }))
    const res = await call('/v1/usage/corrections', {
      key: tenant.adminKey,
      body: { meter: 'requests', value: -2, key_id: 'key_a', timestamp: (day0 + HOUR) / 1000, reason: 'test traffic' },
    })
    expect(res.status).toBe(201)
    const after = await json(await call(`/v1/usage?start=${day0 / 1000}&end=${(day0 + DAY) / 1000}`, { key: tenant.adminKey }))
    const requests = (b: any) => b.data.find((r: any) => r.meter === 'requests').value
    expect(requests(after)).toBe(requests(before) - 2)
    const { results } = await env.DB.prepare(`SELECT kind, reason, value FROM usage_events WHERE tenant_id = ?1 AND kind = 'correction'`).bind(tenant.tenantId).all()
    expect(results).toEqual([{ kind: 'correction', reason: 'test traffic', value: -2 }])
  })

  it('refuses bad ranges, groupings and meters with 400, and keys without usage:read with 403', async () => {
    const tenant = await createTenant()
    for (const query of ['start=yesterday', `start=${day0 / 1000}&end=${day0 / 1000 - 1}`, `start=${day0 / 1000}&group_by=meter,colour`, `start=${day0 / 1000}&group_by=day,hour`, 'start=1&end=99999999']) {
      const res = await call(`/v1/usage?${query}`, { key: tenant.adminKey })
      expect(res.status, query).toBe(400)
    }
    expect((await call('/v1/usage', { key: tenant.adminKey })).status).toBe(400)
    const bad = await call('/v1/usage/corrections', { key: tenant.adminKey, body: { meter: 'nope', value: 1, reason: 'x' } })
    expect(bad.status).toBe(400)
    expect((await json(bad)).error.param).toBe('meter')
    const reader = await createKey(tenant, ['models:read'])
    expect((await call(`/v1/usage?start=${day0 / 1000}`, { key: reader })).status).toBe(403)
  })

  it('lists the meter registry', async () => {
    const tenant = await createTenant()
    const body = await json(await call('/v1/usage/meters', { key: tenant.adminKey }))
    expect(body.data.map((m: any) => m.name)).toEqual(expect.arrayContaining(['requests', 'tokens.input', 'merge.bytes', 'runner.seconds']))
  })
})

describe('GET /v1/usage/export', () => {
  const range = `start=${day0 / 1000}&end=${(day0 + 3 * DAY) / 1000}`

  it('exports RFC 4180 CSV with one line per ledger event', async () => {
    const tenant = await createTenant()
    const events = await seed(tenant)
    await call('/v1/usage/corrections', { key: tenant.adminKey, body: { meter: 'requests', value: -1, timestamp: (day0 + HOUR) / 1000, reason: 'refund, "goodwill"' } })
    const res = await call(`/v1/usage/export?format=csv&${range}`, { key: tenant.adminKey })
    expect(res.headers.get('content-type')).toMatch(/text\/csv/)
    const lines = (await res.text()).split('\r\n').filter(Boolean)
    expect(lines[0]).toBe('id,timestamp,tenant_id,key_id,meter,unit,value,request_id,kind,reason')
    expect(lines).toHaveLength(events.length + 2)
    expect(lines.find((line) => line.includes('correction'))).toMatch(/,-1,.*,correction,"refund, ""goodwill"""$/)
  })

  it('exports CloudEvents 1.0 as OpenMeter ingests them', async () => {
    const tenant = await createTenant()
    const events = await seed(tenant)
    const body = await json(await call(`/v1/usage/export?format=cloudevents&customer=acme&${range}`, { key: tenant.adminKey }))
    expect(body.data).toHaveLength(events.length)
    const first = body.data.find((e: any) => e.type === 'requests')
    expect(first).toMatchObject({ specversion: '1.0', subject: 'acme', source: `moat/${tenant.tenantId}`, data: { unit: 'request' } })
    expect(new Set(body.data.map((e: any) => e.type))).toEqual(new Set(['requests', 'artifacts.bytes']))
    expect(first.id).toMatch(/^ue_/)
    expect(new Date(first.time).toISOString()).toBe(first.time)
    expect(typeof first.data.value).toBe('number')
    expect(new Set(body.data.map((e: any) => e.id)).size).toBe(events.length)
  })

  it('exports Stripe meter events, listing what Stripe would refuse', async () => {
    const tenant = await createTenant()
    const now = Date.now()
    const recent = await event(tenant, 1, 'requests', 3, now - DAY)
    const old = await event(tenant, 2, 'requests', 1, now - 40 * DAY)
    await deliver('moat-usage', [recent, old])
    await call('/v1/usage/corrections', { key: tenant.adminKey, body: { meter: 'requests', value: -1, timestamp: Math.floor((now - DAY) / 1000), reason: 'x' } })
    const body = await json(await call(`/v1/usage/export?format=stripe&customer=cus_123&start=${Math.floor((now - 60 * DAY) / 1000)}&end=${Math.floor(now / 1000) + 1}`, { key: tenant.adminKey }))
    expect(body.data).toEqual([{ event_name: 'requests', identifier: recent.id, timestamp: Math.floor(recent.timestamp / 1000), payload: { stripe_customer_id: 'cus_123', value: '3' } }])
    expect(body.skipped.map((s: any) => s.reason)).toEqual(expect.arrayContaining([expect.stringMatching(/35-day/), expect.stringMatching(/negative/)]))
    for (const e of body.data) expect(e.identifier.length).toBeLessThanOrEqual(100)
  })

  it('exports Lago events with a transaction_id per ledger event', async () => {
    const tenant = await createTenant()
    const events = await seed(tenant)
    const body = await json(await call(`/v1/usage/export?format=lago&customer=sub_1&${range}`, { key: tenant.adminKey }))
    expect(body.data.map((e: any) => e.transaction_id).sort()).toEqual(events.map((e) => e.id).sort())
    expect(body.data[0]).toMatchObject({ external_subscription_id: 'sub_1', code: expect.any(String), properties: { value: expect.any(Number) } })
    expect(Number.isInteger(body.data[0].timestamp)).toBe(true)
  })

  it('refuses an unknown format with 400 and shows nothing of another tenant', async () => {
    const a = await createTenant()
    const b = await createTenant()
    await seed(a)
    expect((await call(`/v1/usage/export?format=xml&${range}`, { key: a.adminKey })).status).toBe(400)
    const other = await json(await call(`/v1/usage/export?format=lago&${range}`, { key: b.adminKey }))
    expect(other.data).toEqual([])
  })
})
