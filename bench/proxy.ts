import autocannon from 'autocannon'
import { startMiniflareEdge } from '../scripts/miniflare-edge.ts'
import { startFakeUpstream } from '../test/e2e/support/fake-upstream.ts'

// The protected proxy's cost: the same chat completion load (autocannon, a
// fixed time, 16 connections, prompts that vary) sent to the upstream
// directly and through Moat's full pipeline (auth, logprob hardening, input
// and output moderation, the guard, metering) on Miniflare's own socket.

const DURATION = Number(process.env.BENCH_SECONDS ?? 10)
const CONNECTIONS = 16

// Prompts that do not look templated (the guard refuses template floods).
const WORDS = 'river garden winter music engine bridge lantern harbor meadow violin canyon orbit pepper marble falcon quartz ribbon saddle tundra velvet walnut yellow zephyr anchor basket candle dolphin ember feather glacier hammock island jasmine kettle lemon mirror nutmeg oyster pebble quiver rocket saffron thimble umbrella vapor willow'.split(' ')
let state = 12345
const random = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0), state / 2 ** 32)
const prompt = () => Array.from({ length: 4 + Math.floor(random() * 12) }, () => WORDS[Math.floor(random() * WORDS.length)]).join(' ')

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

const upstream = await startFakeUpstream()
const edge = await startMiniflareEdge({
  MOAT_ADMIN_TOKEN: 'bench',
  MOAT_RUNNER_SECRET: 'bench',
  MOAT_SECRETS_KEY: 'bench-secrets-key-of-32-characters-or-more',
  MOAT_OUTBOUND_ALLOW_LOOPBACK: 'true',
})
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

  const direct = await load(`${upstream.url}/v1/chat/completions`, {}, 'echo')
  const passthrough = await load(`${edge.url}/v1/chat/completions`, { authorization: `Bearer ${key}` }, 'bare/echo')
  const moat = await load(`${edge.url}/v1/chat/completions`, { authorization: `Bearer ${key}` }, 'owner/echo')
  const row = (name: string, r: autocannon.Result) =>
    `  ${name.padEnd(22)} ${r.requests.average.toFixed(0).padStart(6)} req/s   p50 ${String(r.latency.p50).padStart(4)} ms   p99 ${String(r.latency.p99).padStart(4)} ms   non-2xx ${r.non2xx}   errors ${r.errors}`
  console.log(`bench/proxy: chat completions, ${CONNECTIONS} connections, ${DURATION} s each (Miniflare, loopback, 2 cores shared by both sides)`)
  console.log(row('upstream directly', direct))
  console.log(row('bare route (no checks)', passthrough))
  console.log(row('full pipeline', moat))
  console.log(`  the pipeline over the bare route: added p50 ${moat.latency.p50 - passthrough.latency.p50} ms, p99 ${moat.latency.p99 - passthrough.latency.p99} ms (targets ≤ 0.5 ms, ≤ 3 ms); throughput ratio ${(moat.requests.average / passthrough.requests.average).toFixed(2)} (target ≥ 0.85)`)
  console.log(`  the whole edge over the upstream: added p50 ${moat.latency.p50 - direct.latency.p50} ms, p99 ${moat.latency.p99 - direct.latency.p99} ms; throughput ratio ${(moat.requests.average / direct.requests.average).toFixed(2)}`)
  console.log(`  status codes: bare ${JSON.stringify(passthrough.statusCodeStats)}, full ${JSON.stringify(moat.statusCodeStats)}`)
} finally {
  await edge.stop()
  await upstream.close()
}
