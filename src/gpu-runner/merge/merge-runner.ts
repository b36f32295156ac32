import { createKernelRunner, type KernelRunner } from './cpu/kernel-runner.ts'
import { MergeError } from './merge-tensor.ts'

// The kernel runner for a merge: the CPU backend, or the WebGPU one (loaded
// only when asked for, so a CPU merge never loads Dawn).

export const MERGE_DEVICES = ['cpu', 'webgpu'] as const
export type MergeDevice = (typeof MERGE_DEVICES)[number]

// `source` names the setting in the error: --device, MOAT_MERGE_DEVICE.
export function parseMergeDevice(value: string, source = '--device'): MergeDevice {
  if ((MERGE_DEVICES as readonly string[]).includes(value)) return value as MergeDevice
  throw new MergeError(`${source} ${JSON.stringify(value)}: expected ${MERGE_DEVICES.join(' or ')}`)
}

export type MergeRunnerOptions = { device: MergeDevice; threads?: number }

export async function createMergeRunner(options: MergeRunnerOptions): Promise<KernelRunner> {
  if (options.device === 'cpu') return createKernelRunner({ threads: options.threads })
  const { createWebGpuKernelRunner } = await import('./webgpu/webgpu-kernel-runner.ts')
  return createWebGpuKernelRunner({ threads: options.threads })
}
