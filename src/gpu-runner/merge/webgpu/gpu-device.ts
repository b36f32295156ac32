import { readFile } from 'node:fs/promises'
import { MergeError } from '../merge-tensor.ts'

// A WebGPU device from Dawn (the `webgpu` package): any GPU with Vulkan
// (Metal, D3D12) drivers, or SwiftShader's CPU Vulkan for tests
// (VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json with
// LD_LIBRARY_PATH=/usr/lib/chromium, from Debian's chromium package).

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json'

export type GpuDevice = {
  device: GPUDevice
  // The adapter's description, e.g. "SwiftShader driver 5.0.0".
  adapter: string
  destroy(): void
}

export type OpenGpuDeviceOptions = { powerPreference?: GPUPowerPreference }

type WebGpuModule = { create(options: string[]): GPU; globals: object }

let instance: Promise<GPU> | null = null

// One Dawn instance per process; devices come and go on it.
function dawn(): Promise<GPU> {
  instance ??= (async () => {
    // libuv's thread pool must be running before Dawn loads its Vulkan
    // driver: when the pool started afterwards, the first file read aborted
    // the process ("The futex facility returned an unexpected error code")
    // and later runs crashed intermittently inside Dawn. Any fs call starts
    // the pool; this one reads a file that always exists.
    await readFile(import.meta.filename)
    const { create, globals } = (await import('webgpu')) as WebGpuModule
    // GPUBufferUsage, GPUMapMode and friends are globals in a browser.
    Object.assign(globalThis, globals)
    return create([])
  })()
  return instance
}

export async function openGpuDevice(options: OpenGpuDeviceOptions = {}): Promise<GpuDevice> {
  const gpu = await dawn()
  const adapter = await gpu.requestAdapter(options.powerPreference ? { powerPreference: options.powerPreference } : undefined)
  if (!adapter) {
    throw new MergeError(
      `no WebGPU adapter: Dawn found no GPU driver it can use; set VK_ICD_FILENAMES for SwiftShader (VK_ICD_FILENAMES=${SWIFTSHADER_ICD} LD_LIBRARY_PATH=/usr/lib/chromium, from Debian's chromium package) or install a Vulkan driver`,
    )
  }
  // The defaults (128 MiB per binding, 256 MiB per buffer, 8 storage buffers
  // per stage) are below what most adapters offer: a 4096 × 4096 float32
  // chunk alone is 64 MiB, and a combine of six models binds eight arrays.
  const { maxStorageBufferBindingSize, maxBufferSize, maxStorageBuffersPerShaderStage } = adapter.limits
  const device = await adapter.requestDevice({ requiredLimits: { maxStorageBufferBindingSize, maxBufferSize, maxStorageBuffersPerShaderStage } })
  return {
    device,
    adapter: adapter.info.description || adapter.info.vendor || 'unknown adapter',
    destroy: () => device.destroy(),
  }
}
