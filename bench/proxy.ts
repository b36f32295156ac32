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
// is mostly queueing), and one request at a time (the latency a request
// adds when nothing waits in front of it), the routes taking turns.
// BENCH_PROFILE=1 also prints where workerd's time goes during the full
// pipeline's second saturated run.

const DURATION = Number(process.env.BENCH_SECONDS ?? 10)
const CONNECTIONS = 16
const PROFILE = process.env.BENCH_PROFILE === '1'

const random = seededRandom(12345)
const prompt = () => randomWords(random, 12)

async function load(url: string, headers: Record<string, string>, model: string) {
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
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

// `rounds`: each request's time in the order the rounds ran (one per round).
type Sequential = { requests: number; p50: number; p99: number; failed: number; rounds: number[] }
type Target = { url: string; headers: Record<string, string>; model: string }

// One request after another, to each target in turn (in a shuffled order
// each round), for the fixed time per target, each timed with the monotonic
// clock: the latency a request adds when it waits behind no other. Taking
// turns gives every target the same background (the usage queue's consumer
// runs on the same thread). autocannon's latencies are whole milliseconds,
// too coarse here.
async function oneAtATime(targets: Target[]): Promise<Sequential[]> {
  const times = targets.map((): number[] => [])
  const failed = targets.map(() => 0)
  const end = performance.now() + DURATION * 1000 * targets.length
  const order = targets.map((_, i) => i)
  while (performance.now() < end) {
    // A new order each round: the route after a pause (the direct call
    // leaves workerd idle, and its queue consumer starts then) changes.
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      ;[order[i], order[j]] = [order[j]!, order[i]!]
    }
    for (const i of order) {
      const target = targets[i]!
      const started = performance.now()
      const response = await fetch(target.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...target.headers },
        body: JSON.stringify({ model: target.model, messages: [{ role: 'user', content: prompt() }] }),
      })
      await response.arrayBuffer()
      times[i]!.push(performance.now() - started)
      if (!response.ok) failed[i]!++
    }
  }
  return times.map((list, i) => {
    const rounds = [...list]
    list.sort((a, b) => a - b)
    const at = (q: number) => list[Math.min(list.length - 1, Math.floor(q * list.length))]!
    return { requests: list.length, p50: at(0.5), p99: at(0.99), failed: failed[i]!, rounds }
  })
}

// What a route adds within each round (its time less the other's in the
// same round, so the machine's drift over the run, which moves every route's
// p50 by a millisecond or more, cancels): the median with a 95 % interval
// (order statistics of the sorted differences). Printed beside the
// difference of p50s, which the targets are stated in.
function pairedAdded(base: Sequential, route: Sequential): { median: number; low: number; high: number } {
  const differences = route.rounds.map((time, r) => time - base.rounds[r]!).sort((a, b) => a - b)
  const n = differences.length
  const spread = 1.96 * Math.sqrt(n) / 2
  const at = (k: number) => differences[Math.min(n - 1, Math.max(0, Math.round(k)))]!
  return { median: at((n - 1) / 2), low: at(n / 2 - spread), high: at(n / 2 + spread) }
}

// The saturated runs, bare and full in turn, twice: each pays for the
// other's queue backlog the same way. Rates are averaged, latencies the worse.
function combine(results: autocannon.Result[]) {
  return {
    average: results.reduce((sum, r) => sum + r.requests.average, 0) / results.length,
    p50: Math.max(...results.map((r) => r.latency.p50)),
    p99: Math.max(...results.map((r) => r.latency.p99)),
    non2xx: results.reduce((sum, r) => sum + r.non2xx, 0),
    errors: results.reduce((sum, r) => sum + r.errors, 0),
  }
}

const sequentialRow = (name: string, r: Sequential) =>
  `  ${name.padEnd(22)} ${String(r.requests).padStart(6)} requests   p50 ${r.p50.toFixed(2).padStart(6)} ms   p99 ${r.p99.toFixed(2).padStart(6)} ms   failed ${r.failed}`

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
  // Each half of the pipeline alone, to say what each adds; and the whole
  // pipeline with every call admitted by the guard before it starts (no
  // overlap), to say what starting it alongside saves.
  for (const [name, policy] of [
    ['guard-only', { moderation: { input: false, output: false } }],
    ['moderation-only', { guard: { enabled: false } }],
    ['admitted-first', { guard: { admission: 'before' } }],
  ] as const) {
    const made = await fetch(`${edge.url}/v1/routes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name, kind: 'openai', upstream_url: `${upstream.url}/v1`, policy }),
    })
    if (made.status !== 201) throw new Error(`route: ${made.status} ${await made.text()}`)
  }

  const route = (model: string) => load(`${edge.url}/v1/chat/completions`, { authorization: `Bearer ${key}` }, model)
  const direct = await load(`${upstream.url}/v1/chat/completions`, {}, 'echo')
  const bareRuns: autocannon.Result[] = []
  const fullRuns: autocannon.Result[] = []
  let profile = null
  for (let round = 0; round < 2; round++) {
    bareRuns.push(await route('bare/echo'))
    if (PROFILE && round === 1) profile = await profileWorkerd(edge.inspectorPort!, edge.bundlePath, async () => void fullRuns.push(await route('owner/echo')))
    else fullRuns.push(await route('owner/echo'))
  }
  const passthrough = combine(bareRuns)
  const moat = combine(fullRuns)
  const edgeTarget = (model: string): Target => ({ url: `${edge.url}/v1/chat/completions`, headers: { authorization: `Bearer ${key}` }, model })
  const [directOne, passthroughOne, moatOne, guardOne, moderationOne, firstOne] = (await oneAtATime([
    { url: `${upstream.url}/v1/chat/completions`, headers: {}, model: 'echo' },
    edgeTarget('bare/echo'),
    edgeTarget('owner/echo'),
    edgeTarget('guard-only/echo'),
    edgeTarget('moderation-only/echo'),
    edgeTarget('admitted-first/echo'),
  ])) as [Sequential, Sequential, Sequential, Sequential, Sequential, Sequential]
  const row = (name: string, r: ReturnType<typeof combine>) =>
    `  ${name.padEnd(22)} ${r.average.toFixed(0).padStart(6)} req/s   p50 ${String(r.p50).padStart(4)} ms   p99 ${String(r.p99).padStart(4)} ms   non-2xx ${r.non2xx}   errors ${r.errors}`
  console.log(`bench/proxy: chat completions, ${DURATION} s per run (Miniflare, loopback, 2 cores shared by both sides)`)
  console.log(`${CONNECTIONS} connections (saturated; bare and full in turn, twice: rates averaged, latencies the worse run):`)
  console.log(row('upstream directly', combine([direct])))
  console.log(row('bare route (no checks)', passthrough))
  console.log(row('full pipeline', moat))
  console.log('one request at a time, the routes taking turns (nothing queued; timed in microseconds):')
  console.log(sequentialRow('upstream directly', directOne))
  console.log(sequentialRow('bare route (no checks)', passthroughOne))
  console.log(sequentialRow('full pipeline', moatOne))
  console.log(sequentialRow('guard only', guardOne))
  console.log(sequentialRow('moderation only', moderationOne))
  console.log(sequentialRow('full, admitted first', firstOne))
  const ms = (x: number) => x.toFixed(2)
  console.log(`  the pipeline over the bare route: throughput ratio ${(moat.average / passthrough.average).toFixed(2)} (target ≥ 0.85); added latency one at a time: p50 ${ms(moatOne.p50 - passthroughOne.p50)} ms, p99 ${ms(moatOne.p99 - passthroughOne.p99)} ms (targets ≤ 0.5 ms, ≤ 3 ms), of which the guard alone p50 ${ms(guardOne.p50 - passthroughOne.p50)} ms and moderation alone ${ms(moderationOne.p50 - passthroughOne.p50)} ms; saturated: p50 +${moat.p50 - passthrough.p50} ms, p99 +${moat.p99 - passthrough.p99} ms`)
  const paired = pairedAdded(passthroughOne, moatOne)
  console.log(`  the pipeline over the bare route paired round by round: added p50 ${ms(paired.median)} ms (95 % interval ${ms(paired.low)} to ${ms(paired.high)} ms)`)
  console.log(`  starting the upstream call while the guard decides (admission "overlap") saves p50 ${ms(firstOne.p50 - moatOne.p50)} ms, p99 ${ms(firstOne.p99 - moatOne.p99)} ms against admitting first`)
  console.log(`  the whole edge over the upstream, one at a time: added p50 ${ms(moatOne.p50 - directOne.p50)} ms, p99 ${ms(moatOne.p99 - directOne.p99)} ms; saturated throughput ratio ${(moat.average / direct.requests.average).toFixed(2)}`)
  console.log(`  status codes: bare ${JSON.stringify(bareRuns.map((r) => r.statusCodeStats))}, full ${JSON.stringify(fullRuns.map((r) => r.statusCodeStats))}`)
  if (profile) printProfile(profile, Number(process.env.BENCH_PROFILE_TOP ?? 25))
} finally {
  await edge.stop()
  await upstream.close()
}
