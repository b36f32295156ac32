import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { QUIET_WRANGLER_ENV, ROOT } from '../../scripts/local-stack.ts'
import { loadDigits, MODEL_META, MODEL_PATH } from '../gpu-runner/inference/mnist-digits.ts'
import { startStack, tenantClient, type Client, type Stack } from './stack.ts'

let stack: Stack
let client: Client
let modelId: string

const digitRows = (indices: number[]) => indices.map((i) => Array.from(loadDigits().pixels[i]!))

beforeAll(async () => {
  stack = await startStack()
  client = await tenantClient(stack.edge)
  await stack.startRunner()
  const model = await client.call('/v1/models', {
    // DAWN off: these tests compare answers with onnxruntime-node's exactly,
    // and a watermarked answer differs on purpose.
    body: { name: 'digits', format: 'onnx', task: 'classification', labels: MODEL_META.labels, input: { shape: [-1, 784], dtype: 'float32' }, policy: { guard: { watermark_share: 0 } } },
  })
  modelId = model.body.id
  const put = await client.call(`/v1/models/${modelId}/versions/1/artifact`, { method: 'PUT', raw: readFileSync(MODEL_PATH) })
  expect(put.status).toBe(201)
  await client.call(`/v1/models/${modelId}/versions/1`, { method: 'PATCH', body: { stage: 'production' } })
})

afterAll(async () => {
  await stack?.stop()
})

describe('hosted inference, end to end', () => {
  it('classifies real held-out digits through the edge exactly as onnxruntime-node does', async () => {
    const indices = MODEL_META.test_indices.slice(0, 40)
    const res = await client.call(`/v1/models/${modelId}/predict`, { body: { instances: digitRows(indices) } })
    expect(res.status).toBe(200)
    const { labels } = loadDigits()
    const correct = res.body.predictions.filter((label: string, i: number) => label === String(labels[indices[i]!])).length
    expect(correct / indices.length).toBeGreaterThan(0.85)

    const session = await ort.InferenceSession.create(MODEL_PATH)
    const flat = Float32Array.from(digitRows(indices).flat())
    const direct = (await session.run({ pixels: new ort.Tensor('float32', flat, [indices.length, 784]) })).probabilities!.data as Float32Array
    res.body.probabilities.flat().forEach((value: number, i: number) => expect(Math.abs(value - direct[i]!)).toBeLessThan(1e-5))
  })

  it('answers the Open Inference Protocol', async () => {
    const [row] = digitRows([MODEL_META.test_indices[0]!])
    const res = await client.call(`/v2/models/${modelId}/infer`, { body: { inputs: [{ name: 'pixels', shape: [1, 784], datatype: 'FP32', data: row }] } })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ model_name: 'digits', model_version: '1', outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [1, 10] }] })
  })

  it('runs a batch of real digits as a job and serves its JSONL output', async () => {
    const indices = MODEL_META.test_indices.slice(0, 500)
    const jsonl = new TextEncoder().encode(digitRows(indices).map((row) => JSON.stringify(row)).join('\n'))
    const upload = await client.call('/v1/uploads', { body: { filename: 'digits.jsonl', bytes: jsonl.length, purpose: 'batch_input' } })
    expect((await client.call(`/v1/uploads/${upload.body.id}/parts/1`, { method: 'PUT', raw: jsonl })).status).toBe(200)
    const sha256 = (await import('node:crypto')).createHash('sha256').update(jsonl).digest('hex')
    expect((await client.call(`/v1/uploads/${upload.body.id}/complete`, { body: { sha256 } })).status).toBe(200)
    const created = await client.call('/v1/jobs', { body: { type: 'batch_inference', model: modelId, input_artifact: upload.body.id } })
    expect(created.status).toBe(202)
    let job = created.body
    for (let i = 0; i < 200 && !['succeeded', 'failed'].includes(job.status); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      job = (await client.call(`/v1/jobs/${job.id}`)).body
    }
    expect(job.status).toBe('succeeded')
    expect(job.result.rows).toBe(500)
    const res = await fetch(`${stack.edge.url}/v1/jobs/${job.id}/output`, { headers: { authorization: `Bearer ${client.key}` } })
    expect(res.status).toBe(200)
    const lines = (await res.text()).trim().split('\n').map((line) => JSON.parse(line))
    const direct = await client.call(`/v1/models/${modelId}/predict`, { body: { instances: digitRows(indices.slice(0, 50)) } })
    expect(lines.slice(0, 50).map((line) => line.prediction)).toEqual(direct.body.predictions)
  })

  it('refuses a file that is not a model with ONNX Runtime’s message', async () => {
    const res = await client.call(`/v1/models/${modelId}/versions/2/artifact`, { method: 'PUT', raw: new TextEncoder().encode('not an onnx file') })
    expect(res.status).toBe(422)
    expect(res.body.error.message).toMatch(/protobuf parsing failed/i)
  })

  it('refuses to serve a model whose probe answers changed', async () => {
    // Rewrite the recorded probe answers, as if the artifact had been swapped, then
    // let a fresh runner (empty cache) load the model.
    // wrangler dev holds the database; the write waits its turn (SQLITE_BUSY).
    for (let attempt = 1; ; attempt++) {
      try {
        execFileSync(
          process.execPath,
          [join(ROOT, 'node_modules/wrangler/bin/wrangler.js'), 'd1', 'execute', 'DB', '--local', '--persist-to', join(stack.dir, 'edge'), '--command',
            `UPDATE model_versions SET probe = json_set(probe, '$.outputs.probabilities[0]', 0.5) WHERE model_id = '${modelId}'`],
          { env: { ...process.env, ...QUIET_WRANGLER_ENV }, stdio: 'pipe' },
        )
        break
      } catch (error) {
        if (attempt === 20 || !String(error).includes('SQLITE_BUSY')) throw error
        await new Promise((resolve) => setTimeout(resolve, 500))
      }
    }
    for (const runner of stack.runners) await runner.kill()
    await stack.startRunner()
    // The killed runner may still look alive to the edge for a few seconds
    // (its TTL is 3 s, longer on a busy machine).
    let res = await client.call(`/v1/models/${modelId}/predict`, { body: { instances: digitRows([0]) } })
    for (let i = 0; i < 160 && res.status !== 409; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250))
      res = await client.call(`/v1/models/${modelId}/predict`, { body: { instances: digitRows([0]) } })
    }
    expect(res.status).toBe(409)
    expect(res.body.error.code).toBe('probe_mismatch')
  })
})
