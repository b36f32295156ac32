import type { LedgerEvent } from '../../shared/billing/provider-events.ts'
import type { Env } from '../env.ts'

const PAGE_SIZE = 1000

// The ledger events of [start, end) in time order, a page at a time, so an
// export of any size streams with bounded memory.
export async function* ledgerPages(env: Pick<Env, 'DB'>, tenantId: string, range: { start: number; end: number }) {
  let cursor = { timestamp: range.start, id: '' }
  for (;;) {
    const { results } = await env.DB.prepare(
      `SELECT id, tenant_id, key_id, meter, value, timestamp, request_id, kind, reason FROM usage_events
        WHERE tenant_id = ?1 AND timestamp < ?2 AND (timestamp > ?3 OR (timestamp = ?3 AND id > ?4))
        ORDER BY timestamp, id LIMIT ?5`,
    )
      .bind(tenantId, range.end, cursor.timestamp, cursor.id, PAGE_SIZE)
      .all<LedgerEvent>()
    if (results.length > 0) yield results
    if (results.length < PAGE_SIZE) return
    const last = results.at(-1)!
    cursor = { timestamp: last.timestamp, id: last.id }
  }
}
