import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { parseMergeConfig } from '../../../src/shared/merge-config.ts'
import { createKernelRunner, type KernelRunner } from '../../../src/gpu-runner/merge/cpu/kernel-runner.ts'
import { uniformAt } from '../../../src/gpu-runner/merge/cpu/kernels.ts'
import { planMerge } from '../../../src/gpu-runner/merge/merge-plan.ts'
import { parseMergeDevice } from '../../../src/gpu-runner/merge/merge-runner.ts'
import { openConfigModels, relativeTo } from '../../../src/gpu-runner/merge/open-models.ts'
import { runMerge } from '../../../src/gpu-runner/merge/run-merge.ts'
import { bernoulliThreshold } from '../../../src/gpu-runner/merge/webgpu/wgsl-shaders.ts'

// The WebGPU merge backend without a GPU: Dawn on SwiftShader, the CPU Vulkan
// that Debian's chromium package ships (.ci/run installs it). The library
// path must be set before the process starts, hence the child process
// (webgpu-compare.ts), which checks the ops against the CPU kernels and
// merges every fixture config, and prints what it found.
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json'
const CONFIG_DIR = join(import.meta.dirname, '../../fixtures/merge/configs')
const CONFIGS = (await readdir(CONFIG_DIR)).filter((name) => name.endsWith('.yml')).sort()

type Report = {
  adapter: string
  opsChecked: number
  failures: string[]
  fixtures: { config: string; gpuCalls: number; nonFinite: number; worst: { name: string; error: number }[] }[]
}

describe('the WebGPU kernel runner on SwiftShader', () => {
  it('matches the CPU kernels op by op and the numpy reference on every fixture', async () => {
    expect(existsSync(SWIFTSHADER), `install Debian's chromium for ${SWIFTSHADER}`).toBe(true)
    const { stdout } = await promisify(execFile)(process.execPath, [join(import.meta.dirname, 'webgpu-compare.ts')], {
      env: { ...process.env, VK_ICD_FILENAMES: SWIFTSHADER, LD_LIBRARY_PATH: '/usr/lib/chromium' },
      timeout: 120_000,
    })
    const report = JSON.parse(stdout.trim().split('\n').at(-1)!) as Report
    expect(report.adapter).toMatch(/SwiftShader/)
    expect(report.failures).toEqual([])
    expect(report.opsChecked).toBeGreaterThan(60)
    expect(report.fixtures.map((fixture) => fixture.config)).toEqual(CONFIGS.map((name) => name.replace('.yml', '')))
    for (const fixture of report.fixtures) {
      expect({ config: fixture.config, worst: fixture.worst, nonFinite: fixture.nonFinite }).toEqual({ config: fixture.config, worst: [], nonFinite: 0 })
      // Every method has an element-wise step, and it ran on the GPU.
      expect(fixture.gpuCalls, fixture.config).toBeGreaterThan(0)
    }
  }, 150_000)
})

describe('moat merge --device webgpu', () => {
  const BIN = join(import.meta.dirname, '../../../bin/moat.js')
  const moat = (args: string[], icd: string) =>
    promisify(execFile)(process.execPath, [BIN, ...args], { env: { ...process.env, VK_ICD_FILENAMES: icd, LD_LIBRARY_PATH: '/usr/lib/chromium' }, timeout: 60_000 }).then(
      ({ stderr }) => ({ code: 0, stderr }),
      (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
    )

  it('merges on SwiftShader, and says how to get an adapter when there is none', async () => {
    expect(existsSync(SWIFTSHADER), `install Debian's chromium for ${SWIFTSHADER}`).toBe(true)
    const dir = await mkdtemp(join(tmpdir(), 'moat-merge-webgpu-cli-'))
    try {
      const run = await moat(['merge', join(CONFIG_DIR, 'dare_ties.yml'), join(dir, 'out'), '--device', 'webgpu', '--no-progress'], SWIFTSHADER)
      expect(run.stderr).toMatch(/merged 30 tensors/)
      expect(run.code).toBe(0)
      expect(await readdir(join(dir, 'out'))).toContain('model.safetensors')
      const none = await moat(['merge', join(CONFIG_DIR, 'dare_ties.yml'), join(dir, 'none'), '--device', 'webgpu'], join(dir, 'no-such-icd.json'))
      expect(none.code).toBe(1)
      expect(none.stderr).toMatch(/moat merge: no WebGPU adapter: .*set VK_ICD_FILENAMES for SwiftShader/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 90_000)
})

describe('without a GPU', () => {
  it('sets the DARE threshold so that draw < threshold decides as uniformAt(…) < p', () => {
    const ps = [0, 1, 0.5, 1 / 3, 0.1, 0.9, 1e-9, 1 - 1e-9, -0.5, 1.5, NaN, 3 / 16777216, 3 / 16777216 + 1e-12, 3 / 16777216 - 1e-12]
    for (const p of ps) {
      const threshold = bernoulliThreshold(p)
      // Draws are the integers 0 … 2^24 - 1: the decision turns between threshold - 1 and threshold.
      if (threshold > 0) expect((threshold - 1) / 16777216 < p, `p ${p}`).toBe(true)
      if (threshold < 16777216) expect(threshold / 16777216 < p, `p ${p}`).toBe(false)
    }
    // And through the hash itself, on a few thousand draws.
    const p = 0.37
    for (let i = 0; i < 5000; i++) {
      const draw = uniformAt(12345, i) * 16777216
      expect(draw < bernoulliThreshold(p)).toBe(uniformAt(12345, i) < p)
    }
  })

  it('reads the device setting', () => {
    expect(parseMergeDevice('cpu')).toBe('cpu')
    expect(parseMergeDevice('webgpu')).toBe('webgpu')
    expect(() => parseMergeDevice('cuda', 'MOAT_MERGE_DEVICE')).toThrow('MOAT_MERGE_DEVICE "cuda": expected cpu or webgpu')
  })

  // A webgpu runner takes TIES's other path (prune in memory, then a combine
  // without masks); on the CPU kernels both paths give the same bytes.
  it('prunes in memory for a webgpu runner, with the same result as the masked combine', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'moat-merge-path-'))
    const cpu = createKernelRunner({ threads: 1 })
    const labelled: KernelRunner = { ...cpu, device: 'webgpu' }
    let calls: string[] = []
    const spy: KernelRunner = { ...labelled, run: (batch) => ((calls = [...calls, ...batch.map((call) => call.op)]), labelled.run(batch)) }
    try {
      for (const configName of ['ties.yml', 'breadcrumbs_ties.yml']) {
        const config = parseMergeConfig(await readFile(join(CONFIG_DIR, configName), 'utf8'))
        const opened = await openConfigModels(config, relativeTo(dirname(join(CONFIG_DIR, configName))))
        try {
          const plan = planMerge(config, opened.models)
          await runMerge({ plan, outDir: join(dir, `cpu-${configName}`), runner: cpu })
          calls = []
          await runMerge({ plan, outDir: join(dir, `gpu-${configName}`), runner: spy })
        } finally {
          await opened.close()
        }
        expect(calls).toContain('rankMask')
        for (const name of await readdir(join(dir, `cpu-${configName}`))) {
          expect(await readFile(join(dir, `gpu-${configName}`, name)), `${configName} ${name}`).toEqual(await readFile(join(dir, `cpu-${configName}`, name)))
        }
      }
    } finally {
      await cpu.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
