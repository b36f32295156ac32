import { SAFETENSORS_DTYPE_SIZES, SafetensorsError } from '../../shared/safetensors-header.ts'
import { encodedSize, isReadableFloat, LITTLE_ENDIAN, type ReadableFloatDtype, type WritableDtype } from '../tensors/dtype-codec.ts'
import type { ModelTensor } from '../tensors/safetensors-model.ts'
import type { KernelRunner } from './cpu/kernel-runner.ts'
import type { KernelCall } from './cpu/kernels.ts'

// Decoding and encoding on the kernel threads. Decoding bf16 on the main
// thread held every merge to one core while the threads waited for their
// inputs; here the main thread only reads, in large slices, and the threads
// decode each slice (counting NaN and infinity as they go) while the next one
// is read.

// Elements per kernel call: enough work per message, enough calls to share out.
const SLICE_ELEMENTS = 1 << 20
// Bytes per read; a multiple of every element size, so no element straddles two reads.
export const STAGING_BYTES = 8 << 20

function sum(results: unknown[]): number {
  let total = 0
  for (const result of results) total += (result as number[])[0]!
  return total
}

// `bytes` (in shared memory, or anywhere when the runner has one thread) into
// out[outOffset, …); returns how many decoded values are NaN or infinite.
export async function decodeOnRunner(runner: KernelRunner, dtype: ReadableFloatDtype, bytes: Uint8Array, out: Float32Array, outOffset = 0): Promise<number> {
  const count = bytes.byteLength / SAFETENSORS_DTYPE_SIZES[dtype]
  const calls: KernelCall[] = []
  for (let from = 0; from < count; from += SLICE_ELEMENTS) {
    calls.push({ op: 'decode', start: outOffset + from, end: outOffset + Math.min(count, from + SLICE_ELEMENTS), bytes, dtype, out, first: outOffset })
  }
  return sum(await runner.run(calls))
}

async function countOnRunner(runner: KernelRunner, array: Float32Array, start: number, end: number): Promise<number> {
  const calls: KernelCall[] = []
  for (let from = start; from < end; from += SLICE_ELEMENTS) calls.push({ op: 'nonFinite', start: from, end: Math.min(end, from + SLICE_ELEMENTS), arrays: [array] })
  return sum(await runner.run(calls))
}

// values[start, end) into `out` (shared), whose first byte holds element `start`.
export async function encodeOnRunner(runner: KernelRunner, dtype: WritableDtype, values: Float32Array, out: Uint8Array, start = 0, end = values.length): Promise<void> {
  if (out.byteLength < encodedSize(dtype, end - start)) throw new RangeError(`encode needs ${encodedSize(dtype, end - start)} bytes, got ${out.byteLength}`)
  const calls: KernelCall[] = []
  for (let from = start; from < end; from += SLICE_ELEMENTS) {
    calls.push({ op: 'encode', start: from, end: Math.min(end, from + SLICE_ELEMENTS), values, dtype, out, first: start })
  }
  await runner.run(calls)
}

// Shared read buffers, reused from read to read.
export type StagingPool = { take(): Uint8Array; release(buffer: Uint8Array): void }

export function createStagingPool(): StagingPool {
  const free: Uint8Array[] = []
  return {
    take: () => free.pop() ?? new Uint8Array(new SharedArrayBuffer(STAGING_BYTES)),
    release: (buffer) => void free.push(buffer),
  }
}

// A float tensor into `out` (numel long, in shared memory): little-endian f32
// is read straight into it, anything else through two staging buffers, one
// being read while the threads decode the other. Returns how many values are
// NaN or infinite.
export async function readTensorOnRunner(runner: KernelRunner, staging: StagingPool, tensor: ModelTensor, out: Float32Array): Promise<number> {
  const { dtype } = tensor
  if (!isReadableFloat(dtype)) throw new SafetensorsError(`${tensor.file.path}: tensor ${tensor.name} is ${dtype}, not a float dtype`)
  const total = tensor.end - tensor.begin
  const elementBytes = SAFETENSORS_DTYPE_SIZES[dtype]
  if (out.length * elementBytes < total) throw new RangeError(`tensor ${tensor.name} needs ${total / elementBytes} elements, got room for ${out.length}`)
  const direct = dtype === 'F32' && LITTLE_ENDIAN
  const buffers = direct ? [] : [staging.take(), staging.take()]
  let pending: Promise<number> = Promise.resolve(0)
  let nonFinite = 0
  try {
    for (let offset = 0, k = 0; offset < total; offset += STAGING_BYTES, k++) {
      const length = Math.min(STAGING_BYTES, total - offset)
      const first = offset / elementBytes
      const target = direct ? new Uint8Array(out.buffer, out.byteOffset + offset, length) : buffers[k % 2]!.subarray(0, length)
      // The other buffer's decode is still running while this one is read.
      await tensor.file.readRange(tensor, offset, target)
      nonFinite += await pending
      pending = direct ? countOnRunner(runner, out, first, first + length / 4) : decodeOnRunner(runner, dtype, target, out, first)
      // Surfaces when awaited; never an unhandled rejection while the next read runs.
      pending.catch(() => {})
    }
    nonFinite += await pending
    return nonFinite
  } finally {
    // A failed read leaves a decode in flight over a buffer: let it finish before the buffer is reused.
    await pending.catch(() => {})
    for (const buffer of buffers) staging.release(buffer)
  }
}
