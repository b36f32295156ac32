import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { expect, it } from 'vitest'

// WebGPU without a GPU: Dawn on SwiftShader, the CPU Vulkan that Debian's
// chromium package ships (.ci/run installs it). The library path must be set
// before the process starts, hence the child process.
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json'

it('the WebGPU backend gives the reference backend’s outputs within 1e-4', () => {
  expect(existsSync(SWIFTSHADER), `install Debian's chromium for ${SWIFTSHADER}`).toBe(true)
  const out = execFileSync(process.execPath, [join(import.meta.dirname, 'webgpu-compare.ts')], {
    env: { ...process.env, VK_ICD_FILENAMES: SWIFTSHADER, LD_LIBRARY_PATH: '/usr/lib/chromium' },
    timeout: 120_000,
  }).toString()
  const result = JSON.parse(out.trim().split('\n').at(-1)!) as { backend: string; dims: number[]; maxDiff: number }
  expect(result.backend).toBe('onnxruntime-web (webgpu)')
  expect(result.dims).toEqual([32, 10])
  expect(result.maxDiff).toBeLessThan(1e-4)
}, 150_000)
