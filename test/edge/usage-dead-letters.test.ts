import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { scheduledMaintenance } from '../../src/edge/runners/sweep.ts'
import { buildUsageEvent } from '../../src/shared/usage-event.ts'
import { createTenant, deliver } from './helpers.ts'

// A usage message that exhausted its retries is still a served request: it
// must reach the ledger, once, from the dead-letter queue or the cron sweep.
async function ledgerTotal(tenantId: string): Promise<number> {
  const row = await env.DB.prepare(`SELECT coalesce(sum(value), 0) AS n FROM usage_events WHERE tenant_id = ?1 AND meter = 'requests'`)
    .bind(tenantId)
    .first<{ n: number }>()
  return row!.n
}

async function rollupTotal(tenantId: string): Promise<number> {
  const row = await env.DB.prepare(`SELECT coalesce(sum(value), 0) AS n FROM usage_rollups WHERE tenant_id = ?1 AND meter = 'requests' AND granularity = 'day'`)
    .bind(tenantId)
    .first<{ n: number }>()
  return row!.n
}

async function events(tenantId: string, count: number) {
  const at = Date.now()
  return Promise.all(
    Array.from({ length: count }, (_, i) => buildUsageEvent({ tenantId, keyId: null, requestId: `req_dlq_${tenantId}_${i}`, meter: 'requests', value: 1 }, at + i)),
  )
}

describe('usage dead letters', () => {
  it('writes dead-lettered usage to the ledger once, however often it arrives', async () => {
    const tenant = await createTenant('usage-dlq')
    const batch = await events(tenant.tenantId, 5)
    // Two of them had reached the ledger before their batch failed for good.
    await deliver('moat-usage', batch.slice(0, 2))
    expect(await ledgerTotal(tenant.tenantId)).toBe(2)

    const result = await deliver('moat-usage-dlq', [...batch, { not: 'a usage event' }])
    expect(result.ackAll).toBe(true)
    expect(await ledgerTotal(tenant.tenantId)).toBe(5)
    expect(await rollupTotal(tenant.tenantId)).toBe(5)
    await deliver('moat-usage-dlq', batch)
    expect(await ledgerTotal(tenant.tenantId)).toBe(5)

    // Kept, and marked once written; the malformed one stays for an operator.
    const kept = await env.DB.prepare(`SELECT body, replayed_at FROM dead_letters WHERE queue = 'moat-usage-dlq' AND body LIKE ?1 OR body = '{"not":"a usage event"}'`)
      .bind(`%${tenant.tenantId}%`)
      .all<{ body: string; replayed_at: number | null }>()
    expect(kept.results.filter((row) => row.replayed_at !== null)).toHaveLength(10)
    expect(kept.results.filter((row) => row.replayed_at === null).map((row) => row.body)).toEqual(['{"not":"a usage event"}'])
  })

  it('replays from the cron sweep what the dead-letter consumer could not write', async () => {
    const tenant = await createTenant('usage-dlq-sweep')
    const [event] = await events(tenant.tenantId, 1)
    // As the consumer leaves it when D1 refused the ledger write: kept, not replayed.
    await env.DB.prepare(`INSERT INTO dead_letters (id, queue, body, attempts, created_at) VALUES (?1, 'moat-usage-dlq', ?2, 1, ?3)`)
      .bind(`moat-usage-dlq:kept-${tenant.tenantId}`, JSON.stringify(event), Date.now())
      .run()
    expect(await ledgerTotal(tenant.tenantId)).toBe(0)
    await scheduledMaintenance(env)
    expect(await ledgerTotal(tenant.tenantId)).toBe(1)
    await scheduledMaintenance(env)
    expect(await ledgerTotal(tenant.tenantId)).toBe(1)
  })
})
