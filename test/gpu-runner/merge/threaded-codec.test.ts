import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKernelRunner, sharedFloat32, type KernelRunner } from '../../../src/gpu-runner/merge/cpu/kernel-runner.ts'
import { createStagingPool, decodeOnRunner, encodeOnRunner, readTensorOnRunner, STAGING_BYTES } from '../../../src/gpu-runner/merge/threaded-codec.ts'
import { decodeToFloat32, encodeFromFloat32, type ReadableFloatDtype } from '../../../src/gpu-runner/tensors/dtype-codec.ts'
import { openSafetensorsModel } from '../../../src/gpu-runner/tensors/safetensors-model.ts'
import { createShardedWriter } from '../../../src/gpu-runner/tensors/sharded-writer.ts'

// Decoding on the kernel threads must give exactly what the reference
// decoder gives on one thread, and count NaN and infinity exactly.

let one: KernelRunner
let two: KernelRunner
let dir: string
beforeAll(async () => {
  one = createKernelRunner({ threads: 1 })
  two = createKernelRunner({ threads: 2 })
  dir = await mkdtemp(join(tmpdir(), 'moat-codec-'))
})
afterAll(async () => {
  await Promise.all([one.close(), two.close()])
  await rm(dir, { recursive: true, force: true })
})

const shared = (length: number) => new Uint8Array(new SharedArrayBuffer(length))

function nonFiniteCount(values: Float32Array): number {
  let count = 0
  for (const value of values) if (!Number.isFinite(value)) count++
  return count
}

// Positions whose bits differ (toEqual on arrays of millions is far too slow).
function mismatches(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let count = Math.abs(actual.length - expected.length)
  for (let i = 0; i < Math.min(actual.length, expected.length); i++) if (actual[i] !== expected[i]) count++
  return count
}

const bits = (values: Float32Array) => new Uint32Array(values.buffer, values.byteOffset, values.length)

// Every bit pattern of the 8- and 16-bit dtypes, repeated past one kernel slice; random words for f32.
function allPatterns(dtype: ReadableFloatDtype): Uint8Array {
  const size = dtype === 'F32' ? 4 : dtype.startsWith('F8') ? 1 : 2
  const count = (1 << 20) + 4099
  const bytes = shared(count * size)
  let state = 12345
  for (let i = 0; i < count; i++) {
    if (size === 1) bytes[i] = i & 0xff
    else if (size === 2) {
      bytes[i * 2] = i & 0xff
      bytes[i * 2 + 1] = (i >>> 8) & 0xff
    } else {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0
      new DataView(bytes.buffer).setUint32(i * 4, (state ^ (state << 7)) >>> 0, true)
    }
  }
  return bytes
}

describe('decoding on the kernel threads', () => {
  for (const dtype of ['BF16', 'F16', 'F32', 'F8_E4M3', 'F8_E5M2'] as const) {
    it(`${dtype}: every value as the reference decoder gives it, NaN and infinity counted`, async () => {
      const bytes = allPatterns(dtype)
      const size = dtype === 'F32' ? 4 : dtype.startsWith('F8') ? 1 : 2
      const expected = new Float32Array(bytes.byteLength / size)
      decodeToFloat32(dtype, bytes, expected)
      for (const runner of [one, two]) {
        // At an offset into the output, as a read slice lands.
        const out = sharedFloat32(expected.length + 3)
        const count = await decodeOnRunner(runner, dtype, bytes, out, 3)
        expect(mismatches(bits(out.subarray(3)), bits(expected))).toBe(0)
        expect(count).toBe(nonFiniteCount(expected))
      }
    }, 30_000)
  }

  it('encodes what the reference encoder gives', async () => {
    const values = sharedFloat32((1 << 20) + 77)
    const source = allPatterns('F32')
    values.set(new Float32Array(source.buffer, 0, values.length))
    for (const dtype of ['BF16', 'F16', 'F32'] as const) {
      const size = dtype === 'F32' ? 4 : 2
      const expected = new Uint8Array(values.length * size)
      encodeFromFloat32(dtype, values, expected)
      const out = shared(expected.byteLength)
      await encodeOnRunner(two, dtype, values, out)
      expect(mismatches(out, expected)).toBe(0)
      // A middle range, written from the buffer's start.
      const part = shared(1000 * size)
      await encodeOnRunner(two, dtype, values, part, 5000, 6000)
      expect(mismatches(part, expected.subarray(5000 * size, 6000 * size))).toBe(0)
    }
  }, 30_000)

  it('reads tensors larger than a staging buffer, NaN counted, the same on one thread as on two', async () => {
    // Bigger than two staging buffers, and not a multiple of one.
    const count = (STAGING_BYTES * 2.5) / 2 + 3
    const values = new Float32Array(count)
    for (let i = 0; i < count; i++) values[i] = Math.sin(i) * 0.01
    values[7] = Number.NaN
    values[count - 1] = Number.POSITIVE_INFINITY
    values[STAGING_BYTES / 2] = Number.NEGATIVE_INFINITY
    const tensors = [
      { name: 'b', dtype: 'BF16' as const, shape: [count] },
      { name: 'f', dtype: 'F32' as const, shape: [count] },
    ]
    const modelDir = join(dir, 'model')
    await mkdir(modelDir)
    const writer = await createShardedWriter({ dir: modelDir, tensors, maxShardBytes: 1 << 30 })
    for (const tensor of tensors) {
      const bytes = new Uint8Array(count * (tensor.dtype === 'F32' ? 4 : 2))
      encodeFromFloat32(tensor.dtype, values, bytes)
      await writer.write(tensor.name, bytes)
    }
    await writer.commit()
    const model = await openSafetensorsModel(modelDir)
    try {
      for (const name of ['b', 'f']) {
        const tensor = model.tensors.get(name)!
        const expected = new Float32Array(count)
        await tensor.file.readFloat32(tensor, expected)
        for (const runner of [one, two]) {
          const out = sharedFloat32(count)
          expect(await readTensorOnRunner(runner, createStagingPool(), tensor, out)).toBe(3)
          expect(mismatches(bits(out), bits(expected))).toBe(0)
        }
      }
    } finally {
      await model.close()
    }
  }, 60_000)
})
