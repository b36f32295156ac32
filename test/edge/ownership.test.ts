import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { AppEnv } from '../../src/edge/env.ts'
import { guardAfter, guardBefore } from '../../src/edge/guard/guard-hook.ts'
import { watermarkAnswers } from '../../src/edge/guard/watermark-answers.ts'
import { requireKey } from '../../src/edge/middleware/auth.ts'
import { handleError } from '../../src/edge/middleware/error-envelope.ts'
import { requestId } from '../../src/edge/middleware/request-id.ts'
import { call, createKey, createTenant, json, registerModel, type Tenant } from './helpers.ts'

afterEach(() => vi.restoreAllMocks())

// A stand-in classifier: the class is the index of the largest of four
// inputs, with a confident answer. Served the way predict serves a model:
// guard before, watermark the raw answers, guard after.
const classify = (input: number[]) => {
  const best = input.indexOf(Math.max(...input))
  return input.map((_, k) => (k === best ? 0.85 : 0.05))
}

function predictApp(modelId: string, share: number) {
  const app = new Hono<AppEnv>()
  app.use('*', requestId())
  app.onError(handleError)
  app.use('*', requireKey())
  app.post('/predict', async (c) => {
    const { instances } = await c.req.json<{ instances: number[][] }>()
    // Detection is off: these clients repeat inputs on purpose, which the
    // detectors rightly block (tested in guard.test.ts); DAWN runs regardless.
    const ticket = await guardBefore(c, { model: modelId, kind: 'classifier', policy: { enabled: false, watermark_share: share }, units: instances.length })
    const answers = await watermarkAnswers(c.env, ticket, instances.map((input) => ({ input, probabilities: classify(input) })))
    await guardAfter(c, ticket, { units: instances.length, report: { kind: 'classifier', instances: instances.map((input, i) => ({ input, probabilities: classify(input) })) } })
    return c.json({ predictions: answers.map((p) => p.indexOf(Math.max(...p))), probabilities: answers })
  })
  return async (key: string, instances: number[][]) => {
    const ctx = createExecutionContext()
    const res = await app.fetch(new Request('http://moat.test/predict', { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: JSON.stringify({ instances }) }), env, ctx)
    await waitOnExecutionContext(ctx)
    return json(res)
  }
}

async function recordedQueries(tenant: Tenant, modelId: string) {
  const all: any[] = []
  let after = ''
  for (;;) {
    const page = await json(await call(`/v1/models/${modelId}/ownership/queries?limit=100${after ? `&after=${after}` : ''}`, { key: tenant.adminKey }))
    all.push(...page.data)
    if (!page.has_more) return all
    after = page.data.at(-1).id
  }
}

const inputs = Array.from({ length: 400 }, (_, i) => [Math.sin(i), Math.cos(i * 1.3), Math.sin(i * 0.7 + 1), Math.cos(i * 2.1 + 2)])

describe('DAWN watermarking and ownership verification', () => {
  it('marks a share of answers, records them, and proves a copy while clearing an independent model', async () => {
    const tenant = await createTenant()
    const thief = await createKey(tenant)
    const modelId = await registerModel(tenant, 'four')
    const predict = predictApp(modelId, 0.1)
    const answered: number[] = []
    for (let start = 0; start < inputs.length; start += 50) answered.push(...(await predict(thief, inputs.slice(start, start + 50))).predictions)
    const changed = answered.filter((label, i) => label !== classify(inputs[i]!).indexOf(0.85)).length
    expect(changed).toBeGreaterThan(20)
    expect(changed).toBeLessThan(70)
    // The same input answers the same again, marks included.
    expect((await predict(thief, inputs.slice(0, 50))).predictions).toEqual(answered.slice(0, 50))

    const listed = { data: await recordedQueries(tenant, modelId) }
    type Recorded = { id: string; kind: string; watermark_label: number; input: number[] }
    const marks = listed.data.filter((q: Recorded) => q.kind === 'mark')
    expect(marks).toHaveLength(changed)
    // Controls (4 × the share) are recorded with the answer given, unchanged.
    const controls = listed.data.filter((q: Recorded) => q.kind === 'control')
    expect(controls.length).toBeGreaterThan(changed)
    for (const control of controls) expect(control.watermark_label).toBe(classify(control.input).indexOf(0.85))
    const first = marks[0]
    expect(first).toMatchObject({ object: 'watermark.query', classes: 4 })
    const index = inputs.findIndex((input) => input.every((v, k) => v === first.input[k]))
    expect(answered[index]).toBe(first.watermark_label)

    // A surrogate that learned the answers repeats most marks.
    const copy = listed.data.map((q: Recorded, i: number) => ({ query_id: q.id, label: i % 10 === 0 ? classify(q.input).indexOf(0.85) : q.watermark_label }))
    const proven = await json(await call(`/v1/models/${modelId}/ownership/verify`, { key: tenant.adminKey, body: { answers: copy } }))
    expect(proven).toMatchObject({ object: 'ownership.verification', verdict: 'ownership_proven', queries: changed, controls: controls.length })
    expect(proven.chance_rate).toBeLessThan(1 / 3)
    expect(proven.p_value).toBeLessThan(1e-6)
    // A model trained on its own answers the true labels.
    const honest = listed.data.map((q: Recorded) => ({ query_id: q.id, label: classify(q.input).indexOf(0.85) }))
    expect(await json(await call(`/v1/models/${modelId}/ownership/verify`, { key: tenant.adminKey, body: { answers: honest } }))).toMatchObject({ matches: 0, verdict: 'not_proven' })
  }, 30_000)

  it('queries a suspect endpoint on the recorded inputs', async () => {
    const tenant = await createTenant()
    const key = await createKey(tenant)
    const modelId = await registerModel(tenant, 'four')
    await predictApp(modelId, 0.04)(key, inputs)
    const recorded = (await recordedQueries(tenant, modelId)) as { input: number[]; watermark_label: number; kind: string }[]
    const asked: string[] = []
    vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
      const request = new Request(input as RequestInfo, init as RequestInit)
      asked.push(request.headers.get('x-suspect-key') ?? '')
      const { instances } = (await request.json()) as { instances: number[][] }
      // The stolen copy: answers the marks it was trained on.
      const predictions = instances.map((x) => recorded.find((m) => m.input.every((v, k) => v === x[k]))?.watermark_label ?? 0)
      return Response.json({ predictions })
    })
    const verdict = await json(
      await call(`/v1/models/${modelId}/ownership/verify`, { key: tenant.adminKey, body: { endpoint: { url: 'http://127.0.0.1:9/suspect', headers: { 'x-suspect-key': 's' } } } }),
    )
    const marks = recorded.filter((q) => q.kind === 'mark').length
    expect(verdict).toMatchObject({ verdict: 'ownership_proven', queries: marks, matches: marks, controls: recorded.length - marks, control_disagreement: 0 })
    expect(asked.every((header) => header === 's')).toBe(true)
  }, 30_000)

  it('refuses bad requests', async () => {
    const tenant = await createTenant()
    const modelId = await registerModel(tenant, 'four')
    const url = `/v1/models/${modelId}/ownership/verify`
    expect((await call(url, { key: tenant.adminKey, body: {} })).status).toBe(400)
    expect((await call(url, { key: tenant.adminKey, body: { answers: [{ query_id: 'wmq_nope', label: 1 }] } })).status).toBe(400)
    expect((await call(url, { key: tenant.adminKey, body: { endpoint: { url: 'http://127.0.0.1:9/x' } } })).status).toBe(422)
    expect((await call(url, { key: tenant.adminKey, body: { endpoint: { url: 'http://10.0.0.1/x' }, answers: [{ query_id: 'a', label: 1 }] } })).status).toBe(400)
    const other = await createTenant('other')
    expect((await call(url, { key: other.adminKey, body: { answers: [{ query_id: 'a', label: 1 }] } })).status).toBe(404)
  })
})
