import { buildUsageEvent } from '../src/shared/usage-event.ts'
import { startMiniflareEdge } from '../scripts/miniflare-edge.ts'

// Usage metering, measured on Miniflare's own socket:
// 1. what metering adds on the request path: building the event (its id is a
//    SHA-256) before the send is handed to waitUntil, against the p50 of a
//    whole authenticated request;
// 2. events per second from the queue into the ledger under concurrent load.

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 3000)
const CONCURRENCY = 16

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

const buildTimes: number[] = []
for (let i = 0; i < 20_000; i++) {
  const t = performance.now()
  await buildUsageEvent({ tenantId: 'tenant_x', keyId: 'key_x', requestId: `req_${i}`, meter: 'requests', value: 1 })
  buildTimes.push((performance.now() - t) * 1000)
}

const edge = await startMiniflareEdge({ MOAT_ADMIN_TOKEN: 'bench', MOAT_RUNNER_SECRET: 'bench', MOAT_SECRETS_KEY: 'bench-secrets-key-of-32-characters-or-more' })
try {
  const created = await fetch(`${edge.url}/admin/tenants`, {
    method: 'POST',
    headers: { authorization: 'Bearer bench', 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'bench' }),
  })
  const { api_key, tenant } = (await created.json()) as { api_key: { key: string }; tenant: { id: string } }
  const headers = { authorization: `Bearer ${api_key.key}` }

  const sequential: number[] = []
  for (let i = 0; i < 300; i++) {
    const t = performance.now()
    await (await fetch(`${edge.url}/v1/usage/meters`, { headers })).arrayBuffer()
    sequential.push(performance.now() - t)
  }

  const db = await edge.mf.getD1Database('DB')
  const ledgerCount = async () =>
    (await db.prepare(`SELECT COUNT(*) AS n FROM usage_events WHERE tenant_id = ?1 AND meter = 'requests'`).bind(tenant.id).first<{ n: number }>())!.n
  const before = await ledgerCount()
  const loadStart = performance.now()
  let next = 0
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < REQUESTS) await (await fetch(`${edge.url}/v1/usage/meters`, { headers })).arrayBuffer()
    }),
  )
  const loadEnd = performance.now()
  while ((await ledgerCount()) < before + REQUESTS) await new Promise((resolve) => setTimeout(resolve, 50))
  const drained = performance.now()

  // The consumer on its own: events sent straight into the queue in batches
  // of 100, timed until the last one is in the ledger.
  const DIRECT = Number(process.env.BENCH_QUEUE_EVENTS ?? 20_000)
  const producer = await edge.mf.getQueueProducer('USAGE')
  const countBefore = await ledgerCount()
  const directStart = performance.now()
  for (let offset = 0; offset < DIRECT; offset += 100) {
    const batch = []
    for (let i = offset; i < Math.min(DIRECT, offset + 100); i++) {
      batch.push({ body: await buildUsageEvent({ tenantId: tenant.id, keyId: null, requestId: `req_direct_${i}`, meter: 'requests', value: 1 }) })
    }
    await producer.sendBatch(batch)
  }
  while ((await ledgerCount()) < countBefore + DIRECT) await new Promise((resolve) => setTimeout(resolve, 50))
  const directEnd = performance.now()

  const buildP50 = percentile(buildTimes, 50)
  const requestP50 = percentile(sequential, 50)
  console.log('bench/usage (Miniflare, loopback, 2 cores)')
  console.log(`  on the request path: building a usage event p50 ${buildP50.toFixed(1)} µs, p99 ${percentile(buildTimes, 99).toFixed(1)} µs (Node)`)
  console.log(`  a whole authenticated, metered request: p50 ${requestP50.toFixed(2)} ms, p95 ${percentile(sequential, 95).toFixed(2)} ms`)
  console.log(`  metering's share of the request p50: ${((buildP50 / 1000 / requestP50) * 100).toFixed(2)} % (the send itself runs after the response, in waitUntil)`)
  console.log(`  load: ${REQUESTS} requests, ${CONCURRENCY} concurrent, ${(REQUESTS / ((loadEnd - loadStart) / 1000)).toFixed(0)} req/s served`)
  console.log(`  requests → ledger: ${(REQUESTS / ((drained - loadStart) / 1000)).toFixed(0)} events/s end to end, the last one ${(drained - loadEnd).toFixed(0)} ms after the load ended`)
  console.log(`  queue → ledger alone: ${DIRECT} events in ${((directEnd - directStart) / 1000).toFixed(1)} s = ${(DIRECT / ((directEnd - directStart) / 1000)).toFixed(0)} events/s (batches of 100, insert-or-ignore, rollups by trigger)`)
} finally {
  await edge.stop()
}
