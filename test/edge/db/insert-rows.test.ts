import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { D1_MAX_PARAMETERS, insertOrIgnoreRows } from '../../../src/edge/db/insert-rows.ts'

// Multi-row inserts into a real D1 table: rows split across statements at
// D1's parameter limit, a row already stored and a row repeated in the same
// batch each land once, and the triggers fire per new row.

const COLUMNS = ['request_id', 'tenant_id', 'key_id', 'outcome', 'latency_bucket', 'timestamp'] as const
const HOUR = 3_600_000

describe('insertOrIgnoreRows', () => {
  it('inserts every new row once, across statements, and fires the rollup trigger per new row', async () => {
    const tenant = `tenant_rows_${crypto.randomUUID()}`
    const at = 100 * HOUR
    const rows = Array.from({ length: 40 }, (_, i) => [`req_rows_${tenant}_${i}`, tenant, i % 2 === 0 ? 'key_a' : null, 'served', 3, at + i])
    const perStatement = Math.floor(D1_MAX_PARAMETERS / COLUMNS.length)
    // 40 rows, one already stored, one given twice: 41 rows in 3 statements.
    await env.DB.batch(insertOrIgnoreRows(env.DB, 'request_observations', COLUMNS, rows.slice(0, 1)))
    const statements = insertOrIgnoreRows(env.DB, 'request_observations', COLUMNS, [...rows, rows[20]!])
    expect(statements).toHaveLength(Math.ceil(41 / perStatement))
    await env.DB.batch(statements)
    const stored = await env.DB.prepare('SELECT COUNT(*) AS n, SUM(timestamp) AS total FROM request_observations WHERE tenant_id = ?').bind(tenant).first<{ n: number; total: number }>()
    expect(stored).toEqual({ n: 40, total: 40 * at + (39 * 40) / 2 })
    const rolled = await env.DB.prepare('SELECT key_id, requests FROM traffic_rollups WHERE tenant_id = ? ORDER BY key_id').bind(tenant).all<{ key_id: string; requests: number }>()
    expect(rolled.results).toEqual([
      { key_id: '', requests: 20 },
      { key_id: 'key_a', requests: 20 },
    ])
  })

  it('refuses a row whose length is not the column count', () => {
    expect(() => insertOrIgnoreRows(env.DB, 'request_observations', COLUMNS, [['only', 'two']])).toThrow(/2 values for 6 columns/)
  })
})
