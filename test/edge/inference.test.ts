import { env } from 'cloudflare:workers'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { verifyRunnerSignature } from '../../src/shared/runner-signature.ts'
import { bytesOf, call, createTenant, json, registerRunner, RUNNER_SECRET, type Tenant } from './helpers.ts'

afterEach(() => vi.restoreAllMocks())

const io = { inputs: [{ name: 'pixels', type: 'float32', shape: ['batch', 4] }], outputs: [{ name: 'probabilities', type: 'float32', shape: ['batch', 3] }] }

type Seen = { path: string; body: any; signed: boolean }

// A runner behind fetch: answers inspect and run as told, records what it got.
function fakeRunner(answers: { inspect?: () => Response; run?: (body: any) => Response } = {}) {
  const seen: Seen[] = []
  vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
    const request = new Request(input as RequestInfo, init as RequestInit)
    const url = new URL(request.url)
    const body = JSON.parse(await request.text())
    const check = await verifyRunnerSignature({ secret: RUNNER_SECRET, method: 'POST', path: url.pathname, headers: request.headers })
    seen.push({ path: url.pathname, body, signed: check.ok })
    if (url.pathname === '/inference/inspect') {
      return answers.inspect?.() ?? Response.json({ backend: 'fake', ...io, probe: { seed: body.probe.seed, rows: body.probe.rows, outputs: { probabilities: [0.1] } } })
    }
    const rows = body.input.dims[0]
    const data = Array.from({ length: rows }, (_, row) => [0.1, row % 2 ? 0.8 : 0.1, row % 2 ? 0.1 : 0.8]).flat()
    return answers.run?.(body) ?? Response.json({ backend: 'fake', outputs: [{ name: 'probabilities', dims: [rows, 3], data }], compute_ms: 1, batch_rows: rows })
  })
  return seen
}

async function onnxModel(tenant: Tenant, declared?: unknown, policy?: unknown) {
  const res = await call('/v1/models', {
    key: tenant.adminKey,
    body: {
      name: `clf-${crypto.randomUUID().slice(0, 6)}`,
      format: 'onnx',
      task: 'classification',
      labels: ['cat', 'dog', 'eel'],
      ...(declared ? { input: declared } : {}),
      ...(policy ? { policy } : {}),
    },
  })
  expect(res.status).toBe(201)
  return (await json(res)).id as string
}

async function aliveRunner() {
  await env.DB.prepare(`UPDATE runners SET status = 'lost'`).run()
  await registerRunner(`runner-inf-${crypto.randomUUID().slice(0, 6)}`, 'http://127.0.0.1:9100')
}

async function servedModel(tenant: Tenant, policy?: unknown) {
  await aliveRunner()
  const id = await onnxModel(tenant, undefined, policy)
  fakeRunner()
  expect((await call(`/v1/models/${id}/versions/1/artifact`, { method: 'PUT', key: tenant.adminKey, raw: bytesOf(100) })).status).toBe(201)
  await call(`/v1/models/${id}/versions/1`, { method: 'PATCH', key: tenant.adminKey, body: { stage: 'production' } })
  vi.restoreAllMocks()
  return id
}

describe('ONNX registration', () => {
  it('has a runner inspect the file, and keeps its inputs, outputs and probe answers', async () => {
    const tenant = await createTenant()
    await aliveRunner()
    const id = await onnxModel(tenant, { shape: [-1, 4], dtype: 'float32' })
    const seen = fakeRunner()
    const res = await call(`/v1/models/${id}/versions/1/artifact`, { method: 'PUT', key: tenant.adminKey, raw: bytesOf(100) })
    expect(res.status).toBe(201)
    expect(seen).toHaveLength(1)
    expect(seen[0]).toMatchObject({ path: '/inference/inspect', signed: true, body: { artifact: { name: 'model.onnx', size: 100 }, probe: { rows: 8 } } })
    const row = await env.DB.prepare('SELECT io, probe FROM model_versions WHERE model_id = ?1').bind(id).first<{ io: string; probe: string }>()
    expect(JSON.parse(row!.io)).toEqual(io)
    expect(JSON.parse(row!.probe)).toMatchObject({ rows: 8, outputs: { probabilities: [0.1] } })
  })

  it('refuses a file ONNX Runtime cannot load with its message, keeping nothing', async () => {
    const tenant = await createTenant()
    await aliveRunner()
    const id = await onnxModel(tenant)
    fakeRunner({ inspect: () => Response.json({ error: { message: 'Load model failed:Protobuf parsing failed.', code: 'model_load_failed' } }, { status: 422 }) })
    const res = await call(`/v1/models/${id}/versions/1/artifact`, { method: 'PUT', key: tenant.adminKey, raw: bytesOf(100) })
    expect(res.status).toBe(422)
    expect((await json(res)).error.message).toMatch(/Protobuf parsing failed/)
    expect(await env.DB.prepare('SELECT 1 FROM model_files WHERE tenant_id = ?1').bind(tenant.tenantId).first()).toBeNull()
    expect((await env.ARTIFACTS.list({ prefix: `tenants/${tenant.tenantId}/` })).objects).toHaveLength(0)
  })

  it('refuses a model whose real input differs from its declaration', async () => {
    const tenant = await createTenant()
    await aliveRunner()
    const id = await onnxModel(tenant, { shape: [-1, 5], dtype: 'float32' })
    fakeRunner()
    const res = await call(`/v1/models/${id}/versions/1/artifact`, { method: 'PUT', key: tenant.adminKey, raw: bytesOf(100) })
    expect(res.status).toBe(422)
    expect((await json(res)).error).toMatchObject({ code: 'model_mismatch', message: expect.stringMatching(/\[-1, 5\].*\[batch, 4\]/) })
  })

  it('answers 503 with retry-after when no runner can inspect it', async () => {
    const tenant = await createTenant()
    await env.DB.prepare(`UPDATE runners SET status = 'lost'`).run()
    const id = await onnxModel(tenant)
    const res = await call(`/v1/models/${id}/versions/1/artifact`, { method: 'PUT', key: tenant.adminKey, raw: bytesOf(100) })
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toBe('2')
  })
})

describe('predict and infer', () => {
  it('classifies instances with labels and probabilities, sending the probe along', async () => {
    const tenant = await createTenant()
    // DAWN off: the model's id (random) keys the marks, and a marked answer
    // (0.5 % of them) would change a label this checks.
    const id = await servedModel(tenant, { guard: { watermark_share: 0 } })
    await aliveRunner()
    const seen = fakeRunner()
    const res = await call(`/v1/models/${id}/predict`, { key: tenant.adminKey, body: { instances: [[1, 2, 3, 4], [5, 6, 7, 8]] } })
    expect(res.status).toBe(200)
    expect(await json(res)).toEqual({ predictions: ['eel', 'dog'], probabilities: [expect.any(Array), expect.any(Array)], model_version: '1' })
    expect(seen[0]).toMatchObject({ path: '/inference/run', signed: true, body: { input: { name: 'pixels', dims: [2, 4], data: [1, 2, 3, 4, 5, 6, 7, 8] }, probe: { rows: 8 } } })
  })

  it('speaks the Open Inference Protocol', async () => {
    const tenant = await createTenant()
    const id = await servedModel(tenant)
    await aliveRunner()
    fakeRunner()
    const res = await call(`/v2/models/${id}/infer`, {
      key: tenant.adminKey,
      body: { id: 'r1', inputs: [{ name: 'pixels', shape: [1, 4], datatype: 'FP32', data: [0, 1, 2, 3] }] },
    })
    expect(res.status).toBe(200)
    const body = await json(res)
    expect(body).toMatchObject({ model_version: '1', id: 'r1', outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [1, 3] }] })
    expect(body.outputs[0].data).toHaveLength(3)
  })

  it('refuses bad input with 400 naming the place, too many rows with 413, and maps a busy runner to 429', async () => {
    const tenant = await createTenant()
    const id = await servedModel(tenant)
    await aliveRunner()
    fakeRunner({ run: () => Response.json({ error: { message: 'full', code: 'runner_full' } }, { status: 429 }) })
    const short = await call(`/v1/models/${id}/predict`, { key: tenant.adminKey, body: { instances: [[1, 2, 3]] } })
    expect(short.status).toBe(400)
    expect((await json(short)).error.param).toBe('instances.0')
    const text = await call(`/v1/models/${id}/predict`, { key: tenant.adminKey, body: { instances: [[1, 2, 'x', 4]] } })
    expect((await json(text)).error.param).toBe('instances.0.2')
    const many = await call(`/v1/models/${id}/predict`, { key: tenant.adminKey, body: { instances: Array(257).fill([1, 2, 3, 4]) } })
    expect(many.status).toBe(413)
    const wrongName = await call(`/v2/models/${id}/infer`, { key: tenant.adminKey, body: { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] } })
    expect((await json(wrongName)).error.param).toBe('inputs.0.name')
    const wrongType = await call(`/v2/models/${id}/infer`, { key: tenant.adminKey, body: { inputs: [{ name: 'pixels', shape: [1, 4], datatype: 'INT64', data: [1, 2, 3, 4] }] } })
    expect(wrongType.status).toBe(400)
    const busy = await call(`/v1/models/${id}/predict`, { key: tenant.adminKey, body: { instances: [[1, 2, 3, 4]] } })
    expect(busy.status).toBe(429)
    expect(busy.headers.get('retry-after')).toBe('1')
  })

  it('masks answers as the model’s policy says, on both protocols', async () => {
    const tenant = await createTenant()
    // DAWN off: a marked answer would change the label these checks expect.
    const id = await servedModel(tenant, { masking: { mode: 'label_only' }, guard: { watermark_share: 0 } })
    await aliveRunner()
    fakeRunner()
    const predicted = await json(await call(`/v1/models/${id}/predict`, { key: tenant.adminKey, body: { instances: [[1, 2, 3, 4], [5, 6, 7, 8]] } }))
    expect(predicted).toEqual({ predictions: ['eel', 'dog'], model_version: '1' })
    const inferred = await json(
      await call(`/v2/models/${id}/infer`, { key: tenant.adminKey, body: { inputs: [{ name: 'pixels', shape: [1, 4], datatype: 'FP32', data: [0, 1, 2, 3] }] } }),
    )
    expect(inferred.outputs).toEqual([{ name: 'probabilities', datatype: 'FP32', shape: [1, 3], data: [0, 0, 1] }])
    const rounded = await servedModel(tenant, { masking: { mode: 'round', decimals: 0 }, guard: { watermark_share: 0 } })
    await aliveRunner()
    fakeRunner()
    const coarse = await json(await call(`/v1/models/${rounded}/predict`, { key: tenant.adminKey, body: { instances: [[1, 2, 3, 4]] } }))
    expect(coarse.probabilities).toEqual([[0, 0, 1]])
  })

  it('refuses an invalid masking policy at registration', async () => {
    const tenant = await createTenant()
    const res = await call('/v1/models', { key: tenant.adminKey, body: { name: 'x', format: 'onnx', task: 'classification', policy: { masking: { mode: 'blur' } } } })
    expect(res.status).toBe(400)
    expect((await json(res)).error.param).toBe('policy.masking.mode')
  })

  it('answers 409 for a model without a production version and 400 for a non-ONNX model; 404 for another tenant', async () => {
    const tenant = await createTenant()
    const other = await createTenant()
    const id = await onnxModel(tenant)
    expect((await call(`/v1/models/${id}/predict`, { key: tenant.adminKey, body: { instances: [[1]] } })).status).toBe(409)
    expect((await call(`/v1/models/${id}/predict`, { key: other.adminKey, body: { instances: [[1]] } })).status).toBe(404)
    const safetensors = await json(await call('/v1/models', { key: tenant.adminKey, body: { name: 'lm', format: 'safetensors', task: 'causal-lm' } }))
    expect((await call(`/v1/models/${safetensors.id}/predict`, { key: tenant.adminKey, body: { instances: [[1]] } })).status).toBe(400)
  })
})
