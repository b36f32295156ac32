import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import type { ArtifactRef } from '../../../src/shared/job-types.ts'
import { signedPost, waitFor } from '../support/fixtures.ts'
import { resultOf, startWorld, type TestWorld } from '../support/world.ts'
import { loadDigits, MODEL_META, MODEL_PATH } from './mnist-digits.ts'

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex')

function put(world: TestWorld, key: string, bytes: Uint8Array, name: string): ArtifactRef {
  world.edge.artifacts.set(key, bytes)
  return { name, artifact_key: key, sha256: sha256(bytes), size: bytes.length }
}

function dispatch(jobId: string, model: ArtifactRef, input: ArtifactRef) {
  return {
    job_id: jobId,
    type: 'batch_inference',
    attempt: 1,
    tenant_id: 't',
    params: { model_id: 'm', version: '1', model_artifact: model, probe: null, input_name: 'pixels', row_dims: [784], labels: MODEL_META.labels, input },
  }
}

describe('batch inference jobs', () => {
  let world: TestWorld
  afterEach(async () => {
    await world?.close()
  })

  it('turns a JSONL file of real digits into a JSONL file of predictions, in order', async () => {
    world = await startWorld()
    const { pixels, labels } = loadDigits()
    const indices = MODEL_META.test_indices.slice(0, 300)
    const jsonl = indices.map((i, n) => JSON.stringify(n % 2 ? Array.from(pixels[i]!) : { instance: Array.from(pixels[i]!) })).join('\n') + '\n'
    const model = put(world, 'm/model.onnx', readFileSync(MODEL_PATH), 'model.onnx')
    const input = put(world, 'u/digits.jsonl', new TextEncoder().encode(jsonl), 'digits.jsonl')
    const res = await signedPost(world.runner.url, '/jobs', dispatch('job_b1', model, input))
    expect(res.status).toBe(202)
    await waitFor(() => resultOf(world.edge, 'job_b1') !== undefined, 20_000, 'the batch result')
    const report = resultOf(world.edge, 'job_b1')!
    expect(report.status).toBe('succeeded')
    if (report.status !== 'succeeded') return
    expect(report.result).toMatchObject({ rows: 300, model_id: 'm', version: '1' })
    const upload = [...world.edge.uploads.values()].find((entry) => entry.job_id === 'job_b1')!
    expect(upload.completed).toBe(true)
    const lines = Buffer.concat(upload.parts).toString('utf8').trim().split('\n').map((line) => JSON.parse(line))
    expect(lines).toHaveLength(300)
    const correct = lines.filter((line, n) => line.prediction === String(labels[indices[n]!])).length
    expect(correct / 300).toBeGreaterThan(0.88)
    expect(lines[0].probabilities).toHaveLength(10)
    expect(world.edge.progress.filter((entry) => entry.jobId === 'job_b1').at(-1)?.report).toMatchObject({ done: 300, unit: 'rows' })
  })

  it('fails with the line that is wrong, and uploads nothing', async () => {
    world = await startWorld()
    const model = put(world, 'm/model.onnx', readFileSync(MODEL_PATH), 'model.onnx')
    const row = JSON.stringify(Array(784).fill(0))
    const input = put(world, 'u/bad.jsonl', new TextEncoder().encode(`${row}\n${row}\n[1, 2, 3]\n`), 'bad.jsonl')
    await signedPost(world.runner.url, '/jobs', dispatch('job_b2', model, input))
    await waitFor(() => resultOf(world.edge, 'job_b2') !== undefined, 20_000, 'the batch result')
    expect(resultOf(world.edge, 'job_b2')).toMatchObject({ status: 'failed', error: { code: 'invalid_input', message: expect.stringMatching(/^line 3/) } })
    expect([...world.edge.uploads.values()].some((entry) => entry.job_id === 'job_b2')).toBe(false)
  })
})
