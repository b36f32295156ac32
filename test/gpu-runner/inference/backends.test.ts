import { describe, expect, it } from 'vitest'
import { createDynamicBatcher } from '../../../src/gpu-runner/inference/dynamic-batcher.ts'
import { chooseBackend, ModelLoadError } from '../../../src/gpu-runner/inference/inference-backend.ts'
import { loadDigits, MODEL_META, MODEL_PATH } from './mnist-digits.ts'

function stack(rows: Float32Array[]): Float32Array {
  const out = new Float32Array(rows.length * 784)
  rows.forEach((row, i) => out.set(row, i * 784))
  return out
}

describe('inference backends', () => {
  it('onnxruntime-node classifies held-out real digits with the accuracy training reported', async () => {
    const model = await (await chooseBackend('node')).load(MODEL_PATH)
    expect(model.inputs).toEqual([{ name: 'pixels', type: 'float32', shape: ['batch', 784] }])
    expect(model.outputs).toEqual([{ name: 'probabilities', type: 'float32', shape: ['batch', 10] }])
    const { pixels, labels } = loadDigits()
    const test = MODEL_META.test_indices
    const out = await model.run('pixels', stack(test.map((i) => pixels[i]!)), [test.length, 784])
    let correct = 0
    test.forEach((index, row) => {
      const probabilities = out.probabilities!.data.subarray(row * 10, row * 10 + 10)
      if (probabilities.indexOf(Math.max(...probabilities)) === labels[index]) correct++
    })
    expect(correct / test.length).toBeCloseTo(MODEL_META.test_accuracy, 3)
    expect(correct / test.length).toBeGreaterThan(0.9)
  })

  it('onnxruntime-web (wasm) gives the reference backend’s outputs within 1e-5', async () => {
    const reference = await (await chooseBackend('node')).load(MODEL_PATH)
    const wasm = await (await chooseBackend('wasm')).load(MODEL_PATH)
    const { pixels } = loadDigits()
    const input = stack(pixels.slice(0, 64))
    const [a, b] = await Promise.all([reference.run('pixels', input, [64, 784]), wasm.run('pixels', input, [64, 784])])
    expect(b.probabilities!.dims).toEqual([64, 10])
    for (let i = 0; i < a.probabilities!.data.length; i++) expect(Math.abs(a.probabilities!.data[i]! - b.probabilities!.data[i]!)).toBeLessThan(1e-5)
  })

  it('refuses a file that is not a model with the runtime’s own message', async () => {
    const { writeFile, mkdtemp } = await import('node:fs/promises')
    const { join } = await import('node:path')
    const { tmpdir } = await import('node:os')
    const path = join(await mkdtemp(join(tmpdir(), 'moat-onnx-')), 'bad.onnx')
    await writeFile(path, 'not a model')
    await expect((await chooseBackend('node')).load(path)).rejects.toThrow(ModelLoadError)
    await expect((await chooseBackend('node')).load(path)).rejects.toThrow(/protobuf parsing failed/i)
  })
})

describe('dynamic batching', () => {
  it('runs concurrent requests as one batch and hands each its own rows', async () => {
    const model = await (await chooseBackend('node')).load(MODEL_PATH)
    const batcher = createDynamicBatcher({ maxRows: 64, maxDelayMs: 20, maxQueuedRows: 1000 })
    const { pixels } = loadDigits()
    const requests = [1, 3, 2, 5].map((rows, i) => pixels.slice(i * 10, i * 10 + rows))
    const results = await Promise.all(requests.map((rows) => batcher.submit(model, 'k', 'pixels', stack(rows), [rows.length, 784])))
    for (const [i, result] of results.entries()) {
      expect(result.batchRows).toBe(11)
      const alone = await model.run('pixels', stack(requests[i]!), [requests[i]!.length, 784])
      expect(result.outputs.probabilities!.dims).toEqual([requests[i]!.length, 10])
      expect(Array.from(result.outputs.probabilities!.data)).toEqual(Array.from(alone.probabilities!.data))
    }
  })

  it('flushes at the row limit and refuses past the queue limit', async () => {
    const model = await (await chooseBackend('node')).load(MODEL_PATH)
    const batcher = createDynamicBatcher({ maxRows: 4, maxDelayMs: 1000, maxQueuedRows: 6 })
    const { pixels } = loadDigits()
    const started = performance.now()
    const full = await batcher.submit(model, 'k', 'pixels', stack(pixels.slice(0, 4)), [4, 784])
    expect(full.batchRows).toBe(4)
    expect(performance.now() - started).toBeLessThan(900)
    const waiting = batcher.submit(model, 'k', 'pixels', stack(pixels.slice(0, 3)), [3, 784])
    await expect(batcher.submit(model, 'k', 'pixels', stack(pixels.slice(0, 4)), [4, 784])).rejects.toThrow(/already waiting/)
    expect(batcher.queuedRows()).toBe(3)
    await expect(waiting).resolves.toMatchObject({ batchRows: 3 })
  })
})
