import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { env } from 'cloudflare:workers'
import type { Env } from '../../src/edge/env.ts'
import type { AdmitRequest } from '../../src/edge/guard/guard-protocol.ts'
import { call, chatWith, completionResponse, createKey, createOwnerRoute, createTenant, json, keyIdOf, wrappedGuard, type Tenant } from './helpers.ts'

// Under `admission: "overlap"` (the default) a client whose last admission
// was a plain allow has its upstream call started while the guard decides;
// the answer is used only once the guard admits the request. Anyone else is
// admitted first. The guard's object answers here after a delay, so the
// order of its answer and the upstream call shows which way a call went.

const GUARD_DELAY_MS = 40

type Event = 'admitted' | 'upstream'

// The guard binding, answering admissions GUARD_DELAY_MS late and logging
// when, and whether each asked the object to answer before observing.
function slowGuard(events: Event[], observedAfterAnswer: boolean[] = []) {
  return wrappedGuard(async (method, call, request) => {
    if (method === 'settle') return call()
    observedAfterAnswer.push((request as AdmitRequest).observeAfterAnswer === true)
    await new Promise((resolve) => setTimeout(resolve, GUARD_DELAY_MS))
    const admission = await call()
    events.push('admitted')
    return admission
  })
}

// The upstream: logs each call; `answer` decides what it does with it.
function upstream(events: Event[], answer: (signal: AbortSignal) => Promise<Response> = async () => completionResponse()) {
  const signals: AbortSignal[] = []
  vi.spyOn(globalThis, 'fetch').mockImplementation(async (_input, init) => {
    events.push('upstream')
    signals.push(init!.signal!)
    return answer(init!.signal!)
  })
  return signals
}


let tenant: Tenant
beforeAll(async () => {
  tenant = await createTenant('guard-overlap')
  await createOwnerRoute(tenant)
})

afterEach(() => {
  vi.restoreAllMocks()
})

async function setKeyPolicy(key: string, policy: object) {
  const res = await call(`/v1/guard/clients/${await keyIdOf(tenant, key)}/policy`, { method: 'PUT', key: tenant.adminKey, body: { policy } })
  expect(res.status, await res.clone().text()).toBe(200)
}

describe('the guard around a proxied call', () => {
  it('admits a new client before calling its upstream, then starts its next call while the guard decides', async () => {
    const key = await createKey(tenant)
    const events: Event[] = []
    upstream(events)
    const afterAnswer: boolean[] = []
    const bindings = slowGuard(events, afterAnswer)
    const first = await chatWith(bindings, key, 'What is the capital of Norway?')
    expect(first.status).toBe(200)
    expect(events).toEqual(['admitted', 'upstream'])
    events.length = 0
    const second = await chatWith(bindings, key, 'And of Sweden?')
    expect(second.status).toBe(200)
    expect((await json(second)).choices[0].message.content).toBe('Bonjour.')
    expect(events).toEqual(['upstream', 'admitted'])
    // Admitted first, the call waits: the object answers before it observes.
    // Overlapped, the call already runs: it observes first.
    expect(afterAnswer).toEqual([true, false])
  })

  it('answers a refusal of an overlapped call with the refusal, aborting the call, and admits the next one first', async () => {
    const key = await createKey(tenant)
    await setKeyPolicy(key, { limits: { rpm: 2 } })
    const events: Event[] = []
    let hold = false
    // Once `hold` is set the upstream answers nothing until its call is aborted.
    const signals = upstream(events, (signal) =>
      hold
        ? new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)))
        : Promise.resolve(completionResponse()),
    )
    const bindings = slowGuard(events)
    expect((await chatWith(bindings, key, 'What is the capital of Norway?')).status).toBe(200)
    expect((await chatWith(bindings, key, 'And of Sweden?')).status).toBe(200)
    hold = true
    events.length = 0
    const refused = await chatWith(bindings, key, 'And of Finland?')
    expect(refused.status).toBe(429)
    expect((await json(refused)).error).toMatchObject({ code: 'rate_limited', param: 'rpm' })
    expect(events).toEqual(['upstream', 'admitted'])
    expect(signals.at(-1)!.aborted).toBe(true)
    // Refused last time: asked first now, and the upstream never sees the call.
    events.length = 0
    expect((await chatWith(bindings, key, 'And of Denmark?')).status).toBe(429)
    expect(events).toEqual(['admitted'])
  })

  it('never overlaps under admission "before"', async () => {
    const key = await createKey(tenant)
    await setKeyPolicy(key, { admission: 'before' })
    const events: Event[] = []
    upstream(events)
    const bindings = slowGuard(events)
    for (const question of ['What is the capital of Norway?', 'And of Sweden?', 'And of Finland?']) {
      expect((await chatWith(bindings, key, question)).status).toBe(200)
    }
    expect(events).toEqual(['admitted', 'upstream', 'admitted', 'upstream', 'admitted', 'upstream'])
  })

  it('gives back the reservation of an overlapped call that fails', async () => {
    const key = await createKey(tenant)
    await setKeyPolicy(key, { limits: { concurrency: 1 } })
    const events: Event[] = []
    let fail = false
    upstream(events, async () => {
      if (fail) throw new TypeError('connection refused')
      return completionResponse()
    })
    const bindings = slowGuard(events)
    expect((await chatWith(bindings, key, 'What is the capital of Norway?')).status).toBe(200)
    fail = true
    events.length = 0
    const failed = await chatWith(bindings, key, 'And of Sweden?')
    expect(failed.status).toBe(502)
    expect(events).toEqual(['upstream', 'admitted'])
    // A client without an end user is known by its key's id.
    const client = await json(await call(`/v1/guard/clients/${await keyIdOf(tenant, key)}`, { key: tenant.adminKey }))
    expect(client.in_flight).toBe(0)
    fail = false
    expect((await chatWith(bindings, key, 'And of Finland?')).status).toBe(200)
  })
})

it('answers a route whose guard policy stopped parsing with a 400 before any upstream call, even for a cleared client', async () => {
  const key = await createKey(tenant)
  const made = await call('/v1/routes', { key: tenant.adminKey, body: { name: 'shifting', kind: 'openai', upstream_url: 'https://upstream.example/v1' } })
  expect(made.status).toBe(201)
  const events: Event[] = []
  upstream(events)
  const bindings = slowGuard(events)
  const ask = (content: string) => chatWith(bindings, key, content, { model: 'shifting/gpt' })
  expect((await ask('What is the capital of Norway?')).status).toBe(200)
  // The API refuses such a policy when a route is saved; a row written
  // before the guard's schema moved on still holds one.
  await (env as unknown as Env).DB.prepare('UPDATE proxy_routes SET policy = ?1 WHERE id = ?2')
    .bind(JSON.stringify({ guard: { admission: 'sideways' } }), (await json(made)).id)
    .run()
  // The edge keeps a route for 2 s.
  await new Promise((resolve) => setTimeout(resolve, 2100))
  events.length = 0
  const refused = await ask('And of Sweden?')
  expect(refused.status).toBe(400)
  expect((await json(refused)).error.code).toBe('invalid_policy')
  expect(events).toEqual([])
})
