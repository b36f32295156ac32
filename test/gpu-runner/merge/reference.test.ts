import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseMergeConfig } from '../../../src/shared/merge-config.ts'
import { createKernelRunner, type KernelRunner } from '../../../src/gpu-runner/merge/cpu/kernel-runner.ts'
import { planMerge } from '../../../src/gpu-runner/merge/merge-plan.ts'
import { openConfigModels, relativeTo } from '../../../src/gpu-runner/merge/open-models.ts'
import { runMerge } from '../../../src/gpu-runner/merge/run-merge.ts'
import { openSafetensorsFile } from '../../../src/gpu-runner/tensors/safetensors-file.ts'
import { openSafetensorsModel } from '../../../src/gpu-runner/tensors/safetensors-model.ts'

// Every method against outputs computed by scripts/merge-fixtures/reference.py,
// an independent numpy implementation of mergekit's formulas.

const FIXTURES = join(import.meta.dirname, '../../fixtures/merge')
const CONFIGS = (await readdir(join(FIXTURES, 'configs'))).filter((name) => name.endsWith('.yml')).sort()

// Float32 sums run in another order (and in float64) than numpy's; narrower
// outputs may land one step apart when the float32 values straddle a rounding boundary.
const TOLERANCE = { F32: 2e-6, F16: 1e-3, BF16: 8e-3 } as Record<string, number>

let out: string
let threaded: KernelRunner
beforeAll(async () => {
  out = await mkdtemp(join(tmpdir(), 'moat-merge-'))
  threaded = createKernelRunner({ threads: 2 })
})
afterAll(async () => {
  await threaded.close()
  await rm(out, { recursive: true, force: true })
})

async function merge(configName: string, dir: string, runner?: KernelRunner) {
  const path = join(FIXTURES, 'configs', configName)
  const config = parseMergeConfig(await readFile(path, 'utf8'))
  const opened = await openConfigModels(config, relativeTo(dirname(path)))
  try {
    const plan = planMerge(config, opened.models)
    return await runMerge({ plan, outDir: dir, maxShardBytes: 16_000, threads: 1, ...(runner ? { runner } : {}) })
  } finally {
    await opened.close()
  }
}

async function readAll(dir: string) {
  const model = await openSafetensorsModel(dir)
  const tensors = new Map<string, { dtype: string; shape: number[]; values: Float32Array }>()
  for (const [name, tensor] of model.tensors) {
    const values = new Float32Array(tensor.shape.reduce((a, b) => a * b, 1))
    await tensor.file.readFloat32(tensor, values)
    tensors.set(name, { dtype: tensor.dtype, shape: tensor.shape, values })
  }
  await model.close()
  return tensors
}

describe('merge methods against the numpy reference', () => {
  for (const configName of CONFIGS) {
    it(configName.replace('.yml', ''), async () => {
      const dir = join(out, configName)
      const outcome = await merge(configName, dir)
      expect(outcome.nonFinite).toEqual([])
      const actual = await readAll(dir)
      const referencePath = join(FIXTURES, 'reference', configName.replace('.yml', '.safetensors'))
      const reference = await openSafetensorsFile(referencePath)
      expect([...actual.keys()].sort()).toEqual(reference.header.tensors.map((t) => t.name).sort())
      const worst: { name: string; error: number }[] = []
      for (const info of reference.header.tensors) {
        const mine = actual.get(info.name)!
        expect({ name: info.name, dtype: mine.dtype, shape: mine.shape }).toEqual({ name: info.name, dtype: info.dtype, shape: info.shape })
        const expected = new Float32Array(mine.values.length)
        await reference.readFloat32(info, expected)
        let error = 0
        for (let i = 0; i < expected.length; i++) {
          error = Math.max(error, Math.abs(mine.values[i]! - expected[i]!) / Math.max(1, Math.abs(expected[i]!)))
        }
        if (error > TOLERANCE[info.dtype]!) worst.push({ name: info.name, error })
      }
      await reference.close()
      expect(worst).toEqual([])
    })
  }

  it('gives the same bytes on two threads as on one', async () => {
    for (const configName of ['ties.yml', 'dare_ties.yml', 'della.yml', 'model_stock-filter-wise.yml', 'nuslerp.yml']) {
      const one = join(out, `one-${configName}`)
      const two = join(out, `two-${configName}`)
      await merge(configName, one)
      await merge(configName, two, threaded)
      for (const name of await readdir(one)) expect(await readFile(join(two, name)), `${configName} ${name}`).toEqual(await readFile(join(one, name)))
    }
  })
})
