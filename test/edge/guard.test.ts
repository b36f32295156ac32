import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import type { AppEnv, Env } from '../../src/edge/env.ts'
import { guardAfter, guardBefore, type GuardAfterInput, type GuardBeforeInput } from '../../src/edge/guard/guard-hook.ts'
import { requireKey } from '../../src/edge/middleware/auth.ts'
import { handleError } from '../../src/edge/middleware/error-envelope.ts'
import { requestId } from '../../src/edge/middleware/request-id.ts'
import { seededRandom } from '../../src/shared/guard/seeded-random.ts'
import { call, createKey, createTenant, json, keyIdOf, type Tenant } from './helpers.ts'

// The guard hook is driven the way predict and the proxy call it: inside a
// request that passed auth. `model` stands in for the model call.
type Step = { before: GuardBeforeInput; after?: (masking: string | null) => GuardAfterInput | null }

function harness(bindings: Env = env) {
  const app = new Hono<AppEnv>()
  app.use('*', requestId())
  app.onError(handleError)
  app.use('*', requireKey())
  app.post('/call', async (c) => {
    const step = (c.req.raw as Request & { step?: Step }).step ?? (await c.req.json<Step>())
    const ticket = await guardBefore(c, step.before)
    if (step.after) await guardAfter(c, ticket, step.after(ticket.masking))
    return c.json({ masking: ticket.masking, action: ticket.action, failed_open: ticket.failedOpen, reservation: ticket.reservation })
  })
  return async (key: string, step: Step, headers: Record<string, string> = {}) => {
    const request = new Request('http://moat.test/call', { method: 'POST', headers: { authorization: `Bearer ${key}`, ...headers }, body: '{}' })
    Object.assign(request, { step })
    const ctx = createExecutionContext()
    const res = await app.fetch(request, bindings, ctx)
    await waitOnExecutionContext(ctx)
    return res
  }
}

const run = harness()

async function setPolicy(tenant: Tenant, clientId: string, policy: unknown) {
  return call(`/v1/guard/clients/${clientId}/policy`, { method: 'PUT', key: tenant.adminKey, body: { policy } })
}

const classify = (model = 'm1'): GuardBeforeInput => ({ model, kind: 'classifier', units: 1 })

describe('per-client limits', () => {
  it('holds an rpm limit exactly under concurrent calls and answers 429 with retry-after', async () => {
    const tenant = await createTenant()
    const key = await createKey(tenant)
    expect((await setPolicy(tenant, await keyIdOf(tenant, key), { limits: { rpm: 5 } })).status).toBe(200)
    const results = await Promise.all(Array.from({ length: 12 }, () => run(key, { before: classify() })))
    expect(results.filter((res) => res.status === 200)).toHaveLength(5)
    const refused = results.find((res) => res.status === 429)!
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect((await json(refused)).error).toMatchObject({ code: 'rate_limited', param: 'rpm', type: 'rate_limit_error' })
  })

  it('counts concurrency until the call reports back', async () => {
    const tenant = await createTenant()
    const key = await createKey(tenant)
    await setPolicy(tenant, await keyIdOf(tenant, key), { limits: { concurrency: 2 } })
    const open = [await run(key, { before: classify() }), await run(key, { before: classify() })]
    expect(open.map((res) => res.status)).toEqual([200, 200])
    const third = await run(key, { before: classify() })
    expect(third.status).toBe(429)
    expect((await json(third)).error.param).toBe('concurrency')
    // A call that settles gives its slot back at once.
    expect((await run(key, { before: classify(), after: () => ({ units: 1 }) })).status).toBe(429)
  })

  it('reserves tokens before the call and reconciles them after', async () => {
    const tenant = await createTenant()
    const key = await createKey(tenant)
    await setPolicy(tenant, await keyIdOf(tenant, key), { limits: { tpm: 100 } })
    const llm = (tokens: number, used: number): Step => ({ before: { model: 'r/gpt', kind: 'llm', tokens }, after: () => ({ tokens: used }) })
    expect((await run(key, llm(80, 10))).status).toBe(200)
    // 90 of 100 tokens are back in the bucket: 80 more fit.
    expect((await run(key, llm(80, 80))).status).toBe(200)
    const over = await run(key, llm(80, 0))
    expect(over.status).toBe(429)
    expect((await json(over)).error.param).toBe('tpm')
    expect((await json(await run(key, llm(101, 0)))).error.param).toBe('tpm')

    const daily = await createKey(tenant)
    await setPolicy(tenant, await keyIdOf(tenant, daily), { limits: { daily_tokens: 50 } })
    expect((await run(daily, llm(40, 45))).status).toBe(200)
    const spent = await run(daily, llm(6, 0))
    expect((await json(spent)).error.param).toBe('daily_tokens')
    expect((await run(daily, llm(5, 5))).status).toBe(200)
  })

  it('keeps daily quotas and budgets, and gives back a call that failed before the model ran', async () => {
    const tenant = await createTenant()
    const key = await createKey(tenant)
    await setPolicy(tenant, await keyIdOf(tenant, key), { limits: { daily_requests: 2, budget_units: 10 } })
    expect((await run(key, { before: { ...classify(), units: 4 }, after: () => null })).status).toBe(200)
    expect((await run(key, { before: { ...classify(), units: 8 }, after: () => ({ units: 8 }) })).status).toBe(200)
    const budget = await run(key, { before: { ...classify(), units: 3 } })
    expect(budget.status).toBe(429)
    expect((await json(budget)).error.param).toBe('budget_units')
    expect((await run(key, { before: { ...classify(), units: 1 } })).status).toBe(200)
    const daily = await run(key, { before: { ...classify(), units: 1 } })
    expect((await json(daily)).error.param).toBe('daily_requests')
    expect(Number(daily.headers.get('retry-after'))).toBeGreaterThan(0)
  })

  it('keeps end users behind one key apart', async () => {
    const tenant = await createTenant()
    const key = await createKey(tenant)
    const keyId = await keyIdOf(tenant, key)
    await setPolicy(tenant, `${keyId}~alice`, { limits: { rpm: 1 } })
    expect((await run(key, { before: classify() }, { 'x-moat-end-user': 'alice' })).status).toBe(200)
    expect((await run(key, { before: classify() }, { 'x-moat-end-user': 'alice' })).status).toBe(429)
    expect((await run(key, { before: classify() }, { 'x-moat-end-user': 'bob' })).status).toBe(200)
    expect((await run(key, { before: classify() }, { 'x-moat-end-user': 'no spaces please' })).status).toBe(400)
  })
})

// JBDA-style probing: a few natural-looking seeds, then many points a small
// step away from them.
function probingReports(count: number) {
  const random = seededRandom(9)
  const seeds = Array.from({ length: 20 }, () => Array.from({ length: 64 }, () => random()))
  return Array.from({ length: count }, (_, i) => {
    const seed = seeds[i % 20]!
    const input = i < 20 ? seed : seed.map((v) => v + (random() < 0.5 ? -0.1 : 0.1))
    const probabilities = Array.from({ length: 10 }, (_, k) => (k === i % 4 ? 0.91 : 0.01))
    return { input, probabilities }
  })
}

describe('extraction detection and actions', () => {
  it('escalates a probing client to a block with an event, an alert and a row in the client list, until an admin resets it', async () => {
    const tenant = await createTenant()
    const key = await createKey(tenant)
    const keyId = await keyIdOf(tenant, key)
    await call('/v1/webhooks', { key: tenant.adminKey, body: { url: 'http://127.0.0.1:9/hook', events: ['guard.*'] } })

    let blockedAt = -1
    const reports = probingReports(200)
    for (let i = 0; i < reports.length; i++) {
      const res = await run(key, { before: classify(), after: () => ({ units: 1, report: { kind: 'classifier', instances: [reports[i]!] } }) })
      if (res.status === 403) {
        expect((await json(res)).error).toMatchObject({ code: 'extraction_suspected', type: 'permission_error' })
        blockedAt = i
        break
      }
      expect(res.status).toBe(200)
    }
    expect(blockedAt).toBeGreaterThan(20)
    expect(blockedAt).toBeLessThan(70)

    const events = await json(await call('/v1/guard/events', { key: tenant.adminKey }))
    expect(events.data[0]).toMatchObject({ type: 'escalated', action: 'block', client_id: keyId, model: 'm1' })
    expect(events.data[0].signals.length).toBeGreaterThan(0)
    const clients = await json(await call('/v1/guard/clients', { key: tenant.adminKey }))
    expect(clients.data[0]).toMatchObject({ id: keyId, action: 'block' })
    expect(clients.data[0].risk).toBeGreaterThanOrEqual(0.85)
    expect(clients.data[0].state_bytes).toBeLessThan(64 * 1024)
    const alerts = await env.DB.prepare(`SELECT event_type, payload FROM webhook_deliveries WHERE tenant_id = ?1`).bind(tenant.tenantId).all<{ event_type: string; payload: string }>()
    const alert = alerts.results.find((row) => row.event_type === 'guard.alert')!
    expect(JSON.parse(alert.payload).data).toMatchObject({ client_id: keyId, action: 'block', previous_action: 'observe', explanation: expect.stringMatching(/^\w+ \d+%: /) })

    const reset = await call(`/v1/guard/clients/${keyId}/reset`, { method: 'POST', key: tenant.adminKey })
    expect(await json(reset)).toMatchObject({ action: 'observe', risk: 0, signals: [] })
    expect((await run(key, { before: classify() })).status).toBe(200)
    const after = await json(await call('/v1/guard/events', { key: tenant.adminKey }))
    expect(after.data[0]).toMatchObject({ type: 'reset', previous_action: 'block', action: 'observe' })
  }, 30_000)

  it('degrades a client with one strong signal to the policy’s masking mode, and leaves natural traffic alone', async () => {
    const tenant = await createTenant()
    const key = await createKey(tenant)
    await setPolicy(tenant, await keyIdOf(tenant, key), { actions: { degrade: 0.3, throttle: 0.99, block: 1 }, degrade_masking: 'top_k' })
    const random = seededRandom(3)
    for (let i = 0; i < 60; i++) {
      const input = Array.from({ length: 64 }, () => random())
      const res = await run(key, { before: classify('natural'), after: () => ({ units: 1, report: { kind: 'classifier', instances: [{ input, probabilities: [0.9, 0.1] }] } }) })
      expect(await json(res)).toMatchObject({ masking: null, action: 'observe' })
    }
    // Answers that sit on a decision boundary, far more often than the
    // baseline: strong, but one signal of weight 0.6 — a degrade, no block.
    let masking: string | null = null
    for (let i = 0; i < 80 && !masking; i++) {
      const input = Array.from({ length: 64 }, () => random())
      const res = await run(key, { before: classify('boundary'), after: () => ({ units: 1, report: { kind: 'classifier', instances: [{ input, probabilities: [0.52, 0.48] }] } }) })
      expect(res.status).toBe(200)
      masking = (await json(res)).masking
    }
    expect(masking).toBe('top_k')
  }, 30_000)
})

describe('LLM routes', () => {
  it('blocks a logit_bias sweep that reads logprobs, and not a client with ordinary prompts', async () => {
    const tenant = await createTenant()
    const sweeper = await createKey(tenant)
    const llm = (prompt: string, logitBias?: Record<string, number>): Step => ({
      before: { model: 'r/gpt', kind: 'llm', tokens: 20 },
      after: () => ({ tokens: 20, report: { kind: 'llm', prompt, ...(logitBias ? { logitBias, logprobs: true } : {}) } }),
    })
    let blockedAt = -1
    for (let i = 0; i < 60 && blockedAt < 0; i++) {
      const res = await run(sweeper, llm(`Say one word. (${i})`, { [String(1000 + 2 * i)]: 100, [String(1001 + 2 * i)]: 100 }))
      if (res.status === 403) blockedAt = i
    }
    // The sweep (2 new ids a call, with logprobs) and its rigid template
    // together: blocked once 32 prompts show the template.
    expect(blockedAt).toBeGreaterThanOrEqual(25)
    expect(blockedAt).toBeLessThanOrEqual(51)
    const events = await json(await call('/v1/guard/events', { key: tenant.adminKey }))
    const signals = events.data.flatMap((event: { signals: { signal: string }[] }) => event.signals.map((reading) => reading.signal))
    expect(signals).toContain('logit_bias_sweep')
    expect(signals).toContain('templated_prompts')

    const ordinary = await createKey(tenant)
    const words = ['why', 'does', 'the', 'sky', 'look', 'blue', 'how', 'do', 'I', 'bake', 'bread', 'write', 'a', 'poem', 'about', 'cats', 'explain', 'tcp', 'slow', 'start', 'in', 'Oslo', 'weather', 'tea']
    const random = seededRandom(5)
    for (let i = 0; i < 40; i++) {
      const prompt = Array.from({ length: 10 + (i % 6) }, () => words[Math.floor(random() * words.length)]).join(' ')
      expect((await run(ordinary, llm(prompt))).status).toBe(200)
    }
  }, 30_000)
})

describe('guard failures and bad input', () => {
  const broken = { ...env, CLIENT_GUARD: { idFromName: env.CLIENT_GUARD.idFromName.bind(env.CLIENT_GUARD), get: () => ({ admit: () => Promise.reject(new Error('object down')) }) } } as unknown as Env

  it('fails closed by default and open when the policy says so', async () => {
    const tenant = await createTenant()
    const key = await createKey(tenant)
    const runBroken = harness(broken)
    const closed = await runBroken(key, { before: classify() })
    expect(closed.status).toBe(503)
    expect((await json(closed)).error.code).toBe('guard_unavailable')
    const open = await runBroken(key, { before: { ...classify(), policy: { fail_mode: 'open' } } })
    expect(await json(open)).toMatchObject({ failed_open: true })
  })

  it('refuses a route saved with a guard policy that does not parse, and keeps a good one as written', async () => {
    const tenant = await createTenant()
    const route = (policy: unknown, name = 'guarded') => call('/v1/routes', { key: tenant.adminKey, body: { name, kind: 'openai', upstream_url: 'https://upstream.example/v1', policy } })
    const bad = await route({ guard: { limits: { rpm: -1 } } })
    expect(bad.status).toBe(400)
    expect((await json(bad)).error).toMatchObject({ code: 'invalid_value', param: 'policy.guard.limits.rpm' })
    expect((await route({ guard: { admission: 'sideways' } })).status).toBe(400)
    const good = await route({ guard: { limits: { rpm: 5 } } })
    expect(good.status).toBe(201)
    const made = await json(good)
    expect(made.policy.guard).toEqual({ limits: { rpm: 5 } })
    const patched = await call(`/v1/routes/${made.id}`, { method: 'PATCH', key: tenant.adminKey, body: { policy: { guard: { fail_mode: 'sometimes' } } } })
    expect(patched.status).toBe(400)
    expect((await json(patched)).error.param).toBe('policy.guard.fail_mode')
    expect((await json(await call(`/v1/routes/${made.id}`, { key: tenant.adminKey }))).policy.guard).toEqual({ limits: { rpm: 5 } })
  })

  it('refuses bad policies, bad amounts and other tenants’ clients', async () => {
    const tenant = await createTenant()
    const other = await createTenant('other')
    const key = await createKey(tenant)
    const keyId = await keyIdOf(tenant, key)
    const bad = await setPolicy(tenant, keyId, { limits: { rpm: -1 } })
    expect(bad.status).toBe(400)
    expect((await json(bad)).error).toMatchObject({ code: 'invalid_policy', param: 'policy.limits.rpm' })
    expect((await setPolicy(tenant, keyId, { actions: { block: 3 } })).status).toBe(400)
    expect((await setPolicy(other, keyId, { limits: { rpm: 1 } })).status).toBe(404)
    expect((await call(`/v1/guard/clients/${keyId}`, { key: other.adminKey })).status).toBe(404)
    expect((await run(key, { before: { ...classify(), policy: { thresholds: { prada_delta: 7 } } } })).status).toBe(400)
    expect((await run(key, { before: { ...classify(), units: -1 } })).status).toBe(400)
    expect((await call('/v1/guard/clients', { key })).status).toBe(403)
  })

  it('reads a client live with its own policy', async () => {
    const tenant = await createTenant()
    const key = await createKey(tenant)
    const keyId = await keyIdOf(tenant, key)
    await setPolicy(tenant, keyId, { limits: { concurrency: 3 } })
    await run(key, { before: classify() })
    expect(await json(await call(`/v1/guard/clients/${keyId}`, { key: tenant.adminKey }))).toMatchObject({
      id: keyId,
      action: 'observe',
      in_flight: 1,
      policy: { limits: { concurrency: 3 } },
    })
  })
})
