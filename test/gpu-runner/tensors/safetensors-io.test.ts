import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SafetensorsError } from '../../../src/shared/safetensors-header.ts'
import { openSafetensorsFile } from '../../../src/gpu-runner/tensors/safetensors-file.ts'
import { openSafetensorsModel } from '../../../src/gpu-runner/tensors/safetensors-model.ts'
import { createShardedWriter, planShards } from '../../../src/gpu-runner/tensors/sharded-writer.ts'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moat-st-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

function rawFile(headerJson: string, data: Uint8Array, lengthOverride?: bigint): Uint8Array {
  const header = new TextEncoder().encode(headerJson)
  const out = new Uint8Array(8 + header.byteLength + data.byteLength)
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(header.byteLength), true)
  out.set(header, 8)
  out.set(data, 8 + header.byteLength)
  return out
}

const f32 = (...values: number[]) => new Uint8Array(new Float32Array(values).buffer)

describe('safetensors files', () => {
  it('writes shards with an index and reads every tensor back', async () => {
    const tensors = [
      { name: 'a', dtype: 'F32' as const, shape: [2, 3] },
      { name: 'b', dtype: 'BF16' as const, shape: [4] },
      { name: 'c', dtype: 'F16' as const, shape: [3] },
      { name: 'empty', dtype: 'F32' as const, shape: [0] },
    ]
    const writer = await createShardedWriter({ dir, tensors, maxShardBytes: 24, metadata: { format: 'pt' } })
    expect(writer.shards.map((s) => s.name)).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'])
    // Out of order and in pieces: each tensor has its place already.
    await writer.write('c', new Uint8Array([0x00, 0x3c, 0x00, 0xc0, 0x00, 0x00]))
    await writer.write('a', f32(4, 5, 6), 12)
    await writer.write('a', f32(1, 2, 3), 0)
    await writer.write('b', new Uint8Array([0x80, 0x3f, 0x00, 0x40, 0x40, 0x40, 0x80, 0xbf]))
    await writer.write('empty', new Uint8Array(0))
    expect((await readdir(dir)).every((name) => name.endsWith('.partial'))).toBe(true)
    const { files } = await writer.commit()
    expect(files).toEqual([...writer.shards.map((s) => s.name), 'model.safetensors.index.json'])
    expect((await readdir(dir)).sort()).toEqual([...files].sort())

    const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8'))
    expect(index.metadata.total_size).toBe(24 + 8 + 6)
    const model = await openSafetensorsModel(dir)
    try {
      const read = async (name: string) => {
        const tensor = model.tensors.get(name)!
        const out = new Float32Array(tensor.shape.reduce((a, b) => a * b, 1))
        await tensor.file.readFloat32(tensor, out)
        return Array.from(out)
      }
      expect(await read('a')).toEqual([1, 2, 3, 4, 5, 6])
      expect(await read('b')).toEqual([1, 2, 3, -1])
      expect(await read('c')).toEqual([1, -2, 0])
      expect(await read('empty')).toEqual([])
    } finally {
      await model.close()
    }
  })

  it('writes a single shard as model.safetensors without an index', () => {
    expect(planShards([{ name: 'x', dtype: 'F32', shape: [10] }], 1000).map((s) => s.name)).toEqual(['model.safetensors'])
    // A tensor larger than the limit gets a shard of its own.
    const shards = planShards(
      [
        { name: 'x', dtype: 'F32', shape: [1] },
        { name: 'big', dtype: 'F32', shape: [100] },
        { name: 'y', dtype: 'F32', shape: [1] },
      ],
      16,
    )
    expect(shards.map((s) => s.tensors.map((t) => t.name))).toEqual([['x'], ['big'], ['y']])
  })

  it('refuses to commit a tensor that was not fully written, and abort leaves nothing behind', async () => {
    const writer = await createShardedWriter({ dir, tensors: [{ name: 'a', dtype: 'F32', shape: [2] }], maxShardBytes: 100 })
    await writer.write('a', f32(1))
    await expect(writer.commit()).rejects.toThrow(/not fully written: a/)
    await writer.abort()
    expect(await readdir(dir)).toEqual([])
  })

  const bad: [string, Uint8Array, RegExp][] = [
    ['an empty file', new Uint8Array(0), /too short/],
    ['a header longer than the file', rawFile('{}', new Uint8Array(0), 1000n), /past the end/],
    ['a huge declared header', rawFile('{}', new Uint8Array(0), 2n ** 40n), /exceeds/],
    ['a truncated data section', rawFile('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', f32(1)), /need 16 data bytes/],
    ['trailing bytes', rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f32(1, 2)), /bytes after the last tensor/],
    ['duplicate tensors', rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f32(1)), /duplicate key/],
  ]
  for (const [label, bytes, message] of bad) {
    it(`refuses ${label} with the file's path in the error`, async () => {
      const path = join(dir, 'bad.safetensors')
      await writeFile(path, bytes)
      const failure = await openSafetensorsFile(path).then(() => null, (error: unknown) => error)
      expect(failure).toBeInstanceOf(SafetensorsError)
      expect((failure as Error).message).toContain(path)
      expect((failure as Error).message).toMatch(message)
    })
  }

  it('refuses an index that disagrees with its shards', async () => {
    await writeFile(join(dir, 's1.safetensors'), rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', f32(1, 2)))
    await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 's1.safetensors' } }))
    await expect(openSafetensorsModel(dir)).rejects.toThrow(/tensor b is not listed/)
    await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 's1.safetensors', b: 's1.safetensors', c: 's1.safetensors' } }))
    await expect(openSafetensorsModel(dir)).rejects.toThrow(/tensor c is not in s1.safetensors/)
    await rm(join(dir, 'model.safetensors.index.json'))
    await expect(openSafetensorsModel(dir)).rejects.toThrow(/neither model.safetensors nor/)
  })

  it('refuses to decode an integer tensor as floats', async () => {
    const path = join(dir, 'model.safetensors')
    await writeFile(path, rawFile('{"ids":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}', f32(1)))
    const file = await openSafetensorsFile(path)
    await expect(file.readFloat32(file.tensors.get('ids')!, new Float32Array(1))).rejects.toThrow(/I32, not a float dtype/)
    await file.close()
  })
})
