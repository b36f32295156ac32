import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parseMergeConfig } from '../../../src/shared/merge-config.ts'
import { SafetensorsError } from '../../../src/shared/safetensors-header.ts'
import { createKernelRunner } from '../../../src/gpu-runner/merge/cpu/kernel-runner.ts'
import { planMerge } from '../../../src/gpu-runner/merge/merge-plan.ts'
import { MergeError, mergeTensor } from '../../../src/gpu-runner/merge/merge-tensor.ts'
import { openConfigModels, relativeTo } from '../../../src/gpu-runner/merge/open-models.ts'
import { runMerge } from '../../../src/gpu-runner/merge/run-merge.ts'
import { encodedSize, encodeFromFloat32 } from '../../../src/gpu-runner/tensors/dtype-codec.ts'
import { createShardedWriter } from '../../../src/gpu-runner/tensors/sharded-writer.ts'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moat-merge-bad-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

type Tensors = Record<string, { shape: number[]; values?: number[] }>

async function writeModel(name: string, tensors: Tensors) {
  const path = join(dir, name)
  await mkdir(path, { recursive: true })
  const entries = Object.entries(tensors)
  const writer = await createShardedWriter({ dir: path, tensors: entries.map(([n, t]) => ({ name: n, dtype: 'F32', shape: t.shape })), maxShardBytes: 1 << 20 })
  for (const [n, t] of entries) {
    const count = t.shape.reduce((a, b) => a * b, 1)
    const values = Float32Array.from(t.values ?? Array.from({ length: count }, (_, i) => (i % 7) * 0.1 + name.length))
    const bytes = new Uint8Array(encodedSize('F32', count))
    encodeFromFloat32('F32', values, bytes)
    await writer.write(n, bytes)
  }
  await writer.commit()
}

const LAYER = (shape: number[], values?: number[]): Tensors => ({
  'model.embed_tokens.weight': { shape: [4, 2] },
  'model.layers.0.mlp.up_proj.weight': { shape, ...(values ? { values } : {}) },
  'model.norm.weight': { shape: [2] },
})

async function plan(yaml: string) {
  const config = parseMergeConfig(yaml)
  const opened = await openConfigModels(config, relativeTo(dir))
  return { plan: () => planMerge(config, opened.models), close: opened.close }
}

const TASK = (method = 'ties') => `
merge_method: ${method}
base_model: base
models:
  - {model: a, parameters: {weight: 1, density: 0.5}}
`

describe('bad input', () => {
  it('names the tensor and the models on a shape mismatch', async () => {
    await writeModel('base', LAYER([2, 2]))
    await writeModel('a', LAYER([2, 3]))
    const { plan: run, close } = await plan(TASK())
    expect(run).toThrow('shape mismatch for model.layers.0.mlp.up_proj.weight: a [2, 3], base [2, 2]')
    await close()
  })

  it('names a tensor missing from a model', async () => {
    await writeModel('base', LAYER([2, 2]))
    const partial = LAYER([2, 2])
    delete partial['model.norm.weight']
    await writeModel('a', partial)
    const { plan: run, close } = await plan(TASK())
    expect(run).toThrow('tensor model.norm.weight is missing from model a')
    await close()
  })

  it('names a missing required parameter with its model and tensor', async () => {
    await writeModel('base', LAYER([2, 2]))
    await writeModel('a', LAYER([2, 2]))
    const { plan: run, close } = await plan('merge_method: ties\nbase_model: base\nmodels:\n  - {model: a, parameters: {density: 0.5}}\n')
    expect(run).toThrow('missing required parameter weight for a in model.embed_tokens.weight')
    await close()
  })

  it('reports NaN and infinity in inputs, and refuses them when asked, leaving no output', async () => {
    await writeModel('base', LAYER([2, 2]))
    await writeModel('a', LAYER([2, 2], [1, NaN, Infinity, 2]))
    const { plan: run, close } = await plan(TASK('task_arithmetic'))
    const reported = await runMerge({ plan: run(), outDir: join(dir, 'out'), threads: 1 })
    expect(reported.nonFinite).toEqual([{ tensor: 'model.layers.0.mlp.up_proj.weight', model: 'a', count: 2 }])
    await expect(runMerge({ plan: run(), outDir: join(dir, 'refused'), threads: 1, refuseNonFinite: true })).rejects.toThrow(
      'tensor model.layers.0.mlp.up_proj.weight of a holds 2 NaN or infinite values',
    )
    expect(await readdir(join(dir, 'refused'))).toEqual([])
    await close()
  })

  it('refuses a crafted safetensors file before merging anything', async () => {
    await writeModel('base', LAYER([2, 2]))
    await mkdir(join(dir, 'a'))
    const header = new TextEncoder().encode('{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}')
    const bytes = new Uint8Array(8 + header.byteLength + 6)
    new DataView(bytes.buffer).setBigUint64(0, BigInt(header.byteLength), true)
    bytes.set(header, 8)
    await writeFile(join(dir, 'a', 'model.safetensors'), bytes)
    await expect(plan(TASK())).rejects.toThrow(SafetensorsError)
    await expect(plan(TASK())).rejects.toThrow(/overlaps/)
  })

  it('removes partial shards when a merge fails midway, and will not write over a model', async () => {
    await writeModel('base', LAYER([2, 2]))
    await writeModel('a', LAYER([2, 2]))
    const { plan: run, close } = await plan('merge_method: della\nbase_model: base\nmodels:\n  - {model: a, parameters: {weight: 1, density: 0.5, epsilon: 0.6}}\n')
    await expect(runMerge({ plan: run(), outDir: join(dir, 'out'), threads: 1 })).rejects.toThrow(/epsilon must keep density/)
    expect(await readdir(join(dir, 'out'))).toEqual([])
    await expect(runMerge({ plan: run(), outDir: join(dir, 'a'), threads: 1 })).rejects.toThrow(/already holds model files/)
    await close()
  })
})

describe('rank selection', () => {
  // A plain stable sort, to check the radix selection against.
  function topKBySort(deltas: Float32Array, k: number): Float32Array {
    const order = Array.from(deltas.keys()).sort((i, j) => Math.abs(deltas[i]!) - Math.abs(deltas[j]!) || i - j)
    const out = new Float32Array(deltas.length)
    for (const i of order.slice(deltas.length - k)) out[i] = deltas[i]!
    return out
  }

  it('keeps exactly the k largest magnitudes, ties broken by index, across chunks and threads', async () => {
    const n = (1 << 20) + 12345
    const base = new Float32Array(new SharedArrayBuffer(n * 4))
    const model = new Float32Array(new SharedArrayBuffer(n * 4))
    let state = 7
    for (let i = 0; i < n; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0
      // Few distinct magnitudes and many zeros: the threshold falls inside a run of equal values.
      model[i] = ((state >>> 16) % 9) * (state & 1 ? 0.25 : -0.25)
    }
    const expected = topKBySort(model, Math.trunc(0.37 * n))
    const runner = createKernelRunner({ threads: 2 })
    try {
      const out = await mergeTensor(runner, {
        name: 't',
        method: 'ties',
        shape: [n],
        base,
        inputs: [{ model: 'm', data: model, params: { weight: 1, density: 0.37 } }],
        params: { normalize: false, lambda: 1 },
        seed: 0,
      })
      let mismatches = 0
      for (let i = 0; i < n; i++) if (out[i] !== expected[i]) mismatches++
      expect(mismatches).toBe(0)
    } finally {
      await runner.close()
    }
  })

  it('keeps breadcrumbs values when gamma × n rounds to 0, where mergekit would drop them all', async () => {
    const runner = createKernelRunner({ threads: 1 })
    const shared = (values: number[]) => {
      const array = new Float32Array(new SharedArrayBuffer(values.length * 4))
      array.set(values)
      return array
    }
    const out = await mergeTensor(runner, {
      name: 'norm',
      method: 'breadcrumbs',
      shape: [4],
      base: shared([0, 0, 0, 0]),
      inputs: [{ model: 'm', data: shared([0.1, -0.4, 0.3, 0.2]), params: { weight: 1, density: 0.5, gamma: 0.01 } }],
      params: { normalize: false, lambda: 1 },
      seed: 0,
    })
    expect(Array.from(out)).toEqual([0, Math.fround(-0.4), Math.fround(0.3), 0])
    await expect(
      mergeTensor(runner, { name: 'x', method: 'linear', shape: [1], base: null, inputs: [{ model: 'm', data: shared([1]), params: { weight: 0 } }], params: {}, seed: 0 }),
    ).rejects.toThrow(MergeError)
  })
})
