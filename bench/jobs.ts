import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, startEdge, startRunner } from '../scripts/local-stack.ts'

// Enqueue → runner start latency: the time from a client's POST /v1/jobs to
// the moment the runner starts the job, over JOBS jobs, one after another, on
// the `npm start` topology (wrangler dev + one runner on loopback). The runner
// logs each start with a millisecond timestamp; client and runner share the
// machine's clock.

const JOBS = Number(process.env.BENCH_JOBS ?? 100)
const TARGET_P50_MS = 1000
const secret = 'bench-runner-secret'
const adminToken = 'bench-admin-token'

function percentile(sorted: number[], p: number): number {
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)
  return sorted[Math.max(0, index)]!
}

const dir = mkdtempSync(join(tmpdir(), 'moat-bench-'))
const edge = await startEdge({
  port: await freePort(),
  persistTo: join(dir, 'edge'),
  vars: { MOAT_ADMIN_TOKEN: adminToken, MOAT_RUNNER_SECRET: secret },
})
const runner = await startRunner({
  port: await freePort(),
  edgeUrl: edge.url,
  secret,
  env: { MOAT_RUNNER_CAPACITY: '4', MOAT_CACHE_DIR: join(dir, 'cache') },
})

try {
  const call = async (path: string, token: string, init: RequestInit = {}) => {
    const res = await fetch(`${edge.url}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers } })
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`)
    return res.json() as Promise<any>
  }
  const tenant = await call('/admin/tenants', adminToken, { method: 'POST', body: JSON.stringify({ name: 'bench' }) })
  const key = tenant.api_key.key as string
  const model = await call('/v1/models', key, { method: 'POST', body: JSON.stringify({ name: 'bench', format: 'safetensors', task: 'causal-lm' }) })
  await call(`/v1/models/${model.id}/versions/1/artifact`, key, { method: 'PUT', body: new Uint8Array(64 * 1024), headers: { 'content-type': 'application/octet-stream' } })

  const startedAt = (jobId: string): number | undefined => {
    const line = runner.output().split('\n').find((entry) => entry.includes('"job started"') && entry.includes(jobId))
    return line ? Date.parse(JSON.parse(line).time) : undefined
  }

  const latencies: number[] = []
  for (let i = 0; i < JOBS; i++) {
    const enqueuedAt = Date.now()
    const job = await call('/v1/jobs', key, { method: 'POST', body: JSON.stringify({ type: 'verify_artifact', model: model.id }) })
    let started: number | undefined
    const deadline = Date.now() + 30_000
    while ((started = startedAt(job.id)) === undefined) {
      if (Date.now() > deadline) throw new Error(`job ${job.id} did not start within 30 s`)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    latencies.push(started - enqueuedAt)
  }

  const sorted = [...latencies].sort((a, b) => a - b)
  const p50 = percentile(sorted, 50)
  const p95 = percentile(sorted, 95)
  console.log(`bench/jobs: enqueue → runner start over ${JOBS} jobs (wrangler dev + 1 runner, loopback)`)
  console.log(`  p50  ${p50} ms`)
  console.log(`  p95  ${p95} ms`)
  console.log(`  min  ${sorted[0]} ms   max ${sorted.at(-1)} ms   mean ${Math.round(latencies.reduce((a, b) => a + b, 0) / latencies.length)} ms`)
  console.log(`  p50 / target (${TARGET_P50_MS} ms): ${(p50 / TARGET_P50_MS).toFixed(2)}`)
} finally {
  await runner.stop()
  await edge.stop()
  rmSync(dir, { recursive: true, force: true })
}
