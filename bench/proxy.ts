import autocannon from 'autocannon'
import { printProfile, profileWorkerd } from '../scripts/cpu-profile.ts'
import { freePort } from '../scripts/local-stack.ts'
import { startMiniflareEdge } from '../scripts/miniflare-edge.ts'
import { seededRandom } from '../src/shared/guard/seeded-random.ts'
import { startFakeUpstream } from '../test/e2e/support/fake-upstream.ts'
import { randomWords } from './varied-text.ts'

// The protected proxy's cost: the same chat completion load (autocannon, a
// fixed time, 16 connections, prompts that vary) sent to the upstream
// directly and through Moat's full pipeline (auth, logprob hardening, input
// and output moderation, the guard, metering) on Miniflare's own socket.
// Twice: with 16 connections (throughput, and latency at saturation, which
// is mostly queueing), and one request at a time (the latency a request adds
// when nothing waits in front of it). BENCH_PROFILE=1 also prints where
// workerd's time goes during the full pipeline's saturated run.

const DURATION = Number(process.env.BENCH_SECONDS ?? 10)
const CONNECTIONS = 16
const PROFILE = process.env.BENCH_PROFILE === '1'

const random = seededRandom(12345)
const prompt = () => randomWords(random, 12)

async function load(url: string, headers: Record<string, string>, model: string, connections = CONNECTIONS) {
  const result = await autocannon({
    url,
    connections,
    duration: DURATION,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        setupRequest: (request) => ({
          ...request,
          body: JSON.stringify({ model, messages: [{ role: 'user', content: prompt() }] }),
        }),
      },
    ],
  })
  return result
}

type Sequential = { requests: number; p50: number; p99: number; failed: number }

// One request after another for the fixed time, each timed with the
// monotonic clock: the latency a request adds when it waits behind no other.
// (autocannon's latencies are whole milliseconds, too coarse for this.)
async function sequential(url: string, headers: Record<string, string>, model: string): Promise<Sequential> {
  const times: number[] = []
  let failed = 0
  const end = performance.now() + DURATION * 1000
  while (performance.now() < end) {
    const started = performance.now()
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: prompt() }] }),
    })
    await response.arrayBuffer()
    times.push(performance.now() - started)
    if (!response.ok) failed++
  }
  times.sort((a, b) => a - b)
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!
  return { requests: times.length, p50: at(0.5), p99: at(0.99), failed }
}

const sequentialRow = (name: string, r: Sequential) =>
  `  ${name.padEnd(22)} ${(r.requests / DURATION).toFixed(0).padStart(6)} req/s   p50 ${r.p50.toFixed(2).padStart(6)} ms   p99 ${r.p99.toFixed(2).padStart(6)} ms   failed ${r.failed}`

const upstream = await startFakeUpstream()
const edge = await startMiniflareEdge({
  MOAT_ADMIN_TOKEN: 'bench',
  MOAT_RUNNER_SECRET: 'bench',
  MOAT_SECRETS_KEY: 'bench-secrets-key-of-32-characters-or-more',
  MOAT_OUTBOUND_ALLOW_LOOPBACK: 'true',
}, PROFILE ? { inspectorPort: await freePort() } : {})
try {
  const tenant = await (
    await fetch(`${edge.url}/admin/tenants`, { method: 'POST', headers: { authorization: 'Bearer bench', 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bench' }) })
  ).json() as { api_key: { key: string } }
  const key = tenant.api_key.key
  const created = await fetch(`${edge.url}/v1/routes`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'owner', kind: 'openai', upstream_url: `${upstream.url}/v1` }),
  })
  if (created.status !== 201) throw new Error(`route: ${created.status} ${await created.text()}`)
  // The same upstream through a route with no checks: no moderation either
  // way, the guard off. What remains is what every call pays (auth, the
  // route, the upstream call, metering): the baseline the ratios use.
  const bare = await fetch(`${edge.url}/v1/routes`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'bare', kind: 'openai', upstream_url: `${upstream.url}/v1`, policy: { moderation: { input: false, output: false }, guard: { enabled: false } } }),
  })
  if (bare.status !== 201) throw new Error(`route: ${bare.status} ${await bare.text()}`)
  // Each half of the pipeline alone, to say what each adds.
  for (const [name, policy] of [
    ['guard-only', { moderation: { input: false, output: false } }],
    ['moderation-only', { guard: { enabled: false } }],
  ] as const) {
    const made = await fetch(`${edge.url}/v1/routes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name, kind: 'openai', upstream_url: `${upstream.url}/v1`, policy }),
    })
    if (made.status !== 201) throw new Error(`route: ${made.status} ${await made.text()}`)
  }

  const route = (model: string, connections?: number) => load(`${edge.url}/v1/chat/completions`, { authorization: `Bearer ${key}` }, model, connections)
  const direct = await load(`${upstream.url}/v1/chat/completions`, {}, 'echo')
  const passthrough = await route('bare/echo')
  let moat!: autocannon.Result
  const profile = PROFILE ? await profileWorkerd(edge.inspectorPort!, edge.bundlePath, async () => void (moat = await route('owner/echo'))) : ((moat = await route('owner/echo')), null)
  const directOne = await sequential(`${upstream.url}/v1/chat/completions`, {}, 'echo')
  const passthroughOne = await sequential(`${edge.url}/v1/chat/completions`, { authorization: `Bearer ${key}` }, 'bare/echo')
  const moatOne = await sequential(`${edge.url}/v1/chat/completions`, { authorization: `Bearer ${key}` }, 'owner/echo')
  const guardOne = await sequential(`${edge.url}/v1/chat/completions`, { authorization: `Bearer ${key}` }, 'guard-only/echo')
  const moderationOne = await sequential(`${edge.url}/v1/chat/completions`, { authorization: `Bearer ${key}` }, 'moderation-only/echo')
  const row = (name: string, r: autocannon.Result) =>
    `  ${name.padEnd(22)} ${r.requests.average.toFixed(0).padStart(6)} req/s   p50 ${String(r.latency.p50).padStart(4)} ms   p99 ${String(r.latency.p99).padStart(4)} ms   non-2xx ${r.non2xx}   errors ${r.errors}`
  console.log(`bench/proxy: chat completions, ${DURATION} s per row (Miniflare, loopback, 2 cores shared by both sides)`)
  console.log(`${CONNECTIONS} connections (saturated):`)
  console.log(row('upstream directly', direct))
  console.log(row('bare route (no checks)', passthrough))
  console.log(row('full pipeline', moat))
  console.log('one request at a time (nothing queued; timed in microseconds):')
  console.log(sequentialRow('upstream directly', directOne))
  console.log(sequentialRow('bare route (no checks)', passthroughOne))
  console.log(sequentialRow('full pipeline', moatOne))
  console.log(sequentialRow('guard only', guardOne))
  console.log(sequentialRow('moderation only', moderationOne))
  const ms = (x: number) => x.toFixed(2)
  console.log(`  the pipeline over the bare route: throughput ratio ${(moat.requests.average / passthrough.requests.average).toFixed(2)} (target ≥ 0.85); added latency one at a time: p50 ${ms(moatOne.p50 - passthroughOne.p50)} ms, p99 ${ms(moatOne.p99 - passthroughOne.p99)} ms (targets ≤ 0.5 ms, ≤ 3 ms), of which the guard alone p50 ${ms(guardOne.p50 - passthroughOne.p50)} ms and moderation alone ${ms(moderationOne.p50 - passthroughOne.p50)} ms; saturated: p50 +${moat.latency.p50 - passthrough.latency.p50} ms, p99 +${moat.latency.p99 - passthrough.latency.p99} ms`)
  console.log(`  the whole edge over the upstream, one at a time: added p50 ${ms(moatOne.p50 - directOne.p50)} ms, p99 ${ms(moatOne.p99 - directOne.p99)} ms; saturated throughput ratio ${(moat.requests.average / direct.requests.average).toFixed(2)}`)
  console.log(`  status codes: bare ${JSON.stringify(passthrough.statusCodeStats)}, full ${JSON.stringify(moat.statusCodeStats)}`)
  if (profile) printProfile(profile, Number(process.env.BENCH_PROFILE_TOP ?? 25))
} finally {
  await edge.stop()
  await upstream.close()
}
