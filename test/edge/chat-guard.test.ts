import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { call, chatWith, completionResponse, createKey, createOwnerRoute, createTenant, json, keyIdOf, wrappedGuard, type Tenant } from './helpers.ts'

// A chat completion's report to the guard (its prompt, logit_bias, logprobs)
// is known before the call, so the guard observes it at admission; the call
// reports back afterwards only when a limit needs what it used (tokens,
// units) or when it ended (concurrency).

const PROMPT_TOKENS = 5
const COMPLETION_TOKENS = 3

// The guard binding, counting the calls the edge makes to it.
function countingGuard() {
  const counts = { admit: 0, settle: 0 }
  const bindings = wrappedGuard((method, call) => (counts[method]++, call()))
  return { counts, bindings }
}

let tenant: Tenant
beforeAll(async () => {
  tenant = await createTenant('chat-guard')
  await createOwnerRoute(tenant)
})

beforeEach(() => {
  vi.spyOn(globalThis, 'fetch').mockImplementation(async () => completionResponse(PROMPT_TOKENS, COMPLETION_TOKENS))
})

afterEach(() => {
  vi.restoreAllMocks()
})

describe('the guard on chat completions', () => {
  it('observes a chat at admission and makes one call to the guard when no limit needs its usage; a templated flood still escalates', async () => {
    const key = await createKey(tenant)
    const { counts, bindings } = countingGuard()
    const sent = 60
    const statuses: number[] = []
    for (let i = 0; i < sent; i++) statuses.push((await chatWith(bindings, key, `Translate the word number ${i} into French, please.`)).status)
    expect(counts).toEqual({ admit: sent, settle: 0 })
    // Observed at admission, the flood is throttled as a report after each call would have had it.
    expect(statuses[0]).toBe(200)
    const throttledAt = statuses.indexOf(429)
    expect(throttledAt).toBeGreaterThan(10)
    expect(statuses.slice(throttledAt).every((status) => status === 429)).toBe(true)
    const keyId = await keyIdOf(tenant, key)
    const clients = await json(await call('/v1/guard/clients', { key: tenant.adminKey }))
    const client = clients.data.find((c: { key_id: string }) => c.key_id === keyId)
    expect(client.action).toBe('throttle')
    expect(client.signals.map((s: { signal: string }) => s.signal)).toContain('templated_prompts')
  })

  it('reports back after the call when a limit counts tokens, and the reservation is reconciled', async () => {
    const key = await createKey(tenant)
    expect((await call(`/v1/guard/clients/${await keyIdOf(tenant, key)}/policy`, { method: 'PUT', key: tenant.adminKey, body: { policy: { limits: { tpm: 100 } } } })).status).toBe(200)
    const { counts, bindings } = countingGuard()
    // 80 reserved, 8 used: the second call's 80 fit only because the first gave back 72.
    expect((await chatWith(bindings, key, 'What is the capital of Norway?', { max_tokens: 80 })).status).toBe(200)
    expect((await chatWith(bindings, key, 'And of Sweden?', { max_tokens: 80 })).status).toBe(200)
    expect(counts).toEqual({ admit: 2, settle: 2 })
    const refused = await chatWith(bindings, key, 'And of Finland?', { max_tokens: 90 })
    expect(refused.status).toBe(429)
    expect((await json(refused)).error.param).toBe('tpm')
  })
})
