import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { inspectResponseSchema } from '../../../src/shared/inference-wire.ts'
import type { ArtifactCache } from '../../../src/gpu-runner/artifact-cache.ts'
import { createDynamicBatcher } from '../../../src/gpu-runner/inference/dynamic-batcher.ts'
import { chooseBackend, type InferenceBackend } from '../../../src/gpu-runner/inference/inference-backend.ts'
import { mountInferenceRoutes } from '../../../src/gpu-runner/inference/inference-routes.ts'
import { createModelCache } from '../../../src/gpu-runner/inference/model-cache.ts'
import type { SignedRequestVariables } from '../../../src/gpu-runner/signed-request.ts'
import { fuzzSettings, fuzzTimeout } from '../../support/fuzz-settings.ts'
import { decode, encode, MODEL_SCHEMA, onnxMutation } from '../../support/onnx-mutations.ts'
import { MODEL_PATH } from './mnist-digits.ts'

// The runner's model inspection (POST /inference/inspect, what the edge calls
// when an ONNX file is uploaded) on mutations of the real MNIST model: bit
// flips, truncations, splices, and protobuf fields changed, dropped,
// repeated, swapped or retyped. Every file is either inspected (200) or
// refused with ONNX Runtime's message (422); never a 500, a crash or a hang.
//
// Each case is a full load by onnxruntime-node (and the probe when it loads),
// about 20 ms: `npm test` runs 100, `npm run fuzz` the whole FUZZ_RUNS (about
// 40 minutes at 100,000).

const settings = fuzzSettings(100, process.env)
// A load that has not answered in this long counts as a hang.
const HANG_MS = 20_000

const model = new Uint8Array(readFileSync(MODEL_PATH))
const dir = mkdtempSync(join(tmpdir(), 'moat-onnx-fuzz-'))
const path = join(dir, 'model.onnx')
let app: Hono<{ Variables: SignedRequestVariables }>
let backend: InferenceBackend
let cases = 0

beforeAll(async () => {
  backend = await chooseBackend('node')
  // The file under test is always "verified": inspection starts where the hash check ends.
  const artifacts: ArtifactCache = { fetchVerified: async () => ({ status: 'ok', path }) as never, pathFor: () => path }
  app = new Hono<{ Variables: SignedRequestVariables }>()
  app.onError((error, c) => c.json({ crashed: String(error) }, 500))
  mountInferenceRoutes(app, {
    backend,
    models: createModelCache({ backend, artifacts, capacity: 2 }),
    batcher: createDynamicBatcher({ maxRows: 64, maxDelayMs: 1, maxQueuedRows: 1000 }),
    signed: async (c, next) => {
      c.set('signedBody', await c.req.text())
      await next()
    },
    retryAfterSeconds: 1,
  })
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

async function inspect(bytes: Uint8Array): Promise<{ status: number; body: any }> {
  writeFileSync(path, bytes)
  // A new hash each time: the model cache must load every file afresh.
  const sha256 = (++cases).toString(16).padStart(64, '0')
  const response = await app.request('/inference/inspect', {
    method: 'POST',
    body: JSON.stringify({ artifact: { name: 'model.onnx', artifact_key: 'fuzz', sha256, size: bytes.byteLength }, probe: { seed: 7, rows: 8 } }),
  })
  return { status: response.status, body: await response.json() }
}

function expectInspectedOrRefused(answer: { status: number; body: any }, what: string): void {
  if (answer.status === 200) {
    const inspected = inspectResponseSchema.parse(answer.body)
    expect(inspected.inputs.length).toBeGreaterThan(0)
    return
  }
  if (answer.status !== 422) throw new Error(`${what}: the runner answered ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`)
  expect(answer.body.error).toMatchObject({ type: 'invalid_request_error', code: 'model_load_failed' })
  expect(answer.body.error.message.length).toBeGreaterThan(5)
}

// The model with the dimensions of its input's shape (batch, 784) replaced:
// a number is a fixed size, a string a symbolic one.
function withInputShape(dims: (bigint | string)[]): Uint8Array {
  const fields = decode(model, MODEL_SCHEMA)
  const child = (list: any[], number: number) => list.find((field) => field.number === number).value
  const input = child(child(fields, 7), 11)
  const shape = child(child(child(input, 2), 1), 2)
  shape.splice(0, shape.length, ...dims.map((dim) => ({ number: 1, wire: 2, value: [typeof dim === 'bigint' ? { number: 1, wire: 0, value: dim } : { number: 2, wire: 2, value: new TextEncoder().encode(dim) }] })))
  return encode(fields)
}

describe('ONNX inspection fuzzing', () => {
  it('inspects the real model as it is', async () => {
    expect(Buffer.from(encode(decode(model, MODEL_SCHEMA))).equals(Buffer.from(model))).toBe(true)
    const answer = await inspect(model)
    expect(answer.status).toBe(200)
    expect(answer.body.inputs).toEqual([{ name: 'pixels', type: 'float32', shape: ['batch', 784] }])
    expect(answer.body.probe.outputs.probabilities).toHaveLength(80)
  })

  // Found by the fuzzer: a repeated dimension (MatMul broadcasts, so the
  // model still loads) made the probe allocate rows × 784^4 floats (a
  // RangeError, a 500), and a model that loads but fails when run answered
  // 500 instead of 422.
  it('refuses a model whose input shape asks for a huge probe, before allocating it', async () => {
    const answer = await inspect(withInputShape(['batch', 784n, 784n, 784n, 784n]))
    expect(answer.status).toBe(422)
    expect(answer.body.error.message).toMatch(/values per row/)
  })

  it('refuses a model that loads but fails on the probe with the runtime’s message', async () => {
    // A symbolic width is probed as 1 wide; the weights are 784 × 128, so MatMul refuses at run time.
    const answer = await inspect(withInputShape(['batch', 'width']))
    expect(answer.status).toBe(422)
    expect(answer.body.error.message).toMatch(/fails on its probe inputs: .*MatMul/i)
  })

  // Found while fuzzing external-data fields: ONNX Runtime reads external
  // tensors from the model's own directory, and the artifact cache keeps
  // every tenant's artifacts in one directory by hash, so a crafted model
  // could load another tenant's artifact as its weights.
  it('refuses a model whose weights name another file beside it', async () => {
    const other = new Float32Array(10).fill(0.25)
    writeFileSync(join(dir, 'other-artifact'), new Uint8Array(other.buffer))
    const fields = decode(model, MODEL_SCHEMA)
    const child = (list: any[], number: number) => list.filter((field) => field.number === number)
    const initializer = child(child(fields, 7)[0].value, 5).find((field: any) => new TextDecoder().decode(child(field.value, 8)[0].value) === 'b2')
    const text = (value: string) => new TextEncoder().encode(value)
    const entry = (key: string, value: string) => ({ number: 13, wire: 2, value: [{ number: 1, wire: 2, value: text(key) }, { number: 2, wire: 2, value: text(value) }] })
    initializer.value = [...initializer.value.filter((field: any) => field.number !== 9), entry('location', 'other-artifact'), { number: 14, wire: 0, value: 1n }]
    const answer = await inspect(encode(fields))
    expect(answer.status).toBe(422)
    expect(answer.body.error.message).toMatch(/external data/i)
  })

  // Found by the fuzzer (case 83,074 of 100,000: eight bit flips): weights
  // that make the probe answer NaN gave an inspection the edge could not read
  // (JSON has no NaN) instead of a 422.
  it('refuses a model whose probe answers are not finite', async () => {
    const fields = decode(model, MODEL_SCHEMA)
    const child = (list: any[], number: number) => list.filter((field) => field.number === number)
    const bias = child(child(fields, 7)[0].value, 5).find((field: any) => new TextDecoder().decode(child(field.value, 8)[0].value) === 'b2')
    const raw = child(bias.value, 9)[0]
    raw.value = new Uint8Array(new Float32Array(raw.value.byteLength / 4).fill(Number.NaN).buffer)
    const answer = await inspect(encode(fields))
    expect(answer.status).toBe(422)
    expect(answer.body.error).toMatchObject({ code: 'model_load_failed', message: expect.stringMatching(/non-finite values \(NaN\) in output probabilities/) })
  })

  it(`inspects or refuses every mutated model, never a 500 or a hang (${settings.numRuns} loads)`, async () => {
    await fc.assert(
      fc.asyncProperty(onnxMutation(), async (mutation) => {
        expectInspectedOrRefused(await inspect(mutation.apply(model)), mutation.what)
      }),
      { ...settings, timeout: HANG_MS },
    )
  }, fuzzTimeout(settings, 60))
})
