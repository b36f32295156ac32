import { randomUUID } from 'node:crypto'
import { open, readdir, rename, rm, writeFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { encodeSafetensorsHeader, SAFETENSORS_DTYPE_SIZES, elementCount, type SafetensorsDtype } from '../../shared/safetensors-header.ts'
import { SAFETENSORS_INDEX_NAME } from '../../shared/safetensors-index.ts'

// Writes a model as safetensors shards with mergekit's names
// (`model-00001-of-00003.safetensors` and an index; a single shard is
// `model.safetensors`). Every tensor's place is known before the first byte is
// written, so each shard's header goes first and tensors are written at their
// offsets as they are produced, in any order. Shards are written under hidden
// temporary names and renamed only when all of them are complete, the index
// last: a directory that looks like a model always holds a whole one.

export type PlannedTensor = { name: string; dtype: SafetensorsDtype; shape: number[] }

export type ShardedWriterOptions = {
  dir: string
  tensors: PlannedTensor[]
  maxShardBytes: number
  metadata?: Record<string, string>
}

export type ShardPlan = { name: string; tensors: PlannedTensor[]; bytes: number }

export type ShardedWriter = {
  shards: ShardPlan[]
  // Writes `bytes` into tensor `name` at `offset` bytes from its start.
  write(name: string, bytes: Uint8Array, offset?: number): Promise<void>
  // Makes the output visible; fails if any tensor is not fully written.
  commit(): Promise<{ files: string[]; totalBytes: number }>
  // Removes every temporary file.
  abort(): Promise<void>
}

export const DEFAULT_SHARD_BYTES = 5_000_000_000

function tensorBytes(tensor: PlannedTensor): number {
  return elementCount(tensor.shape, tensor.name) * SAFETENSORS_DTYPE_SIZES[tensor.dtype]
}

// Fills shards in order; a tensor that does not fit starts a new shard, and a
// tensor larger than the limit gets a shard of its own, as mergekit does.
export function planShards(tensors: PlannedTensor[], maxShardBytes: number): ShardPlan[] {
  const groups: { tensors: PlannedTensor[]; bytes: number }[] = []
  for (const tensor of tensors) {
    const size = tensorBytes(tensor)
    const last = groups.at(-1)
    if (last && last.tensors.length > 0 && last.bytes + size <= maxShardBytes) {
      last.tensors.push(tensor)
      last.bytes += size
    } else groups.push({ tensors: [tensor], bytes: size })
  }
  if (groups.length === 0) groups.push({ tensors: [], bytes: 0 })
  const total = groups.length
  return groups.map((group, i) => ({
    ...group,
    name: total === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(total).padStart(5, '0')}.safetensors`,
  }))
}

// Names that would make a merge into `dir` mix with an earlier model.
export async function existingModelFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[])
  return names.filter((name) => name.endsWith('.safetensors') || name === SAFETENSORS_INDEX_NAME)
}

type Slot = { handle: FileHandle; position: number; size: number; written: number }

export async function createShardedWriter(options: ShardedWriterOptions): Promise<ShardedWriter> {
  const shards = planShards(options.tensors, options.maxShardBytes)
  const tag = randomUUID().slice(0, 8)
  const tempName = (name: string) => `.${name}.${tag}.partial`
  const handles: FileHandle[] = []
  const slots = new Map<string, Slot>()
  let closed = false

  const closeAll = async () => {
    if (closed) return
    closed = true
    await Promise.all(handles.map((handle) => handle.close().catch(() => {})))
  }
  const removeTemps = () => Promise.all([...shards.map((shard) => shard.name), SAFETENSORS_INDEX_NAME].map((name) => rm(join(options.dir, tempName(name)), { force: true })))

  try {
    for (const shard of shards) {
      const handle = await open(join(options.dir, tempName(shard.name)), 'wx')
      handles.push(handle)
      const { bytes, offsets } = encodeSafetensorsHeader(shard.tensors, options.metadata)
      await handle.write(bytes, 0, bytes.byteLength, 0)
      const total = bytes.byteLength + shard.bytes
      // Sized up front: zero-byte tensors at the end still leave the file its exact length.
      await handle.truncate(total)
      shard.tensors.forEach((tensor, i) => {
        const range = offsets[i]!
        slots.set(tensor.name, { handle, position: bytes.byteLength + range.begin, size: range.end - range.begin, written: 0 })
      })
    }
  } catch (error) {
    await closeAll()
    await removeTemps()
    throw error
  }

  return {
    shards,
    async write(name, bytes, offset = 0) {
      const slot = slots.get(name)
      if (!slot) throw new Error(`tensor ${name} is not part of this output`)
      if (offset + bytes.byteLength > slot.size) throw new RangeError(`write past the end of tensor ${name}`)
      let done = 0
      while (done < bytes.byteLength) {
        const { bytesWritten } = await slot.handle.write(bytes, done, bytes.byteLength - done, slot.position + offset + done)
        done += bytesWritten
      }
      slot.written += bytes.byteLength
    },
    async commit() {
      const unfinished = [...slots].filter(([, slot]) => slot.written !== slot.size).map(([name]) => name)
      if (unfinished.length > 0) throw new Error(`tensors not fully written: ${unfinished.slice(0, 5).join(', ')}`)
      await Promise.all(handles.map((handle) => handle.sync()))
      await closeAll()
      for (const shard of shards) await rename(join(options.dir, tempName(shard.name)), join(options.dir, shard.name))
      const files = shards.map((shard) => shard.name)
      const totalBytes = shards.reduce((sum, shard) => sum + shard.bytes, 0)
      if (shards.length > 1) {
        const weightMap: Record<string, string> = {}
        for (const shard of shards) for (const tensor of shard.tensors) weightMap[tensor.name] = shard.name
        const index = { metadata: { ...options.metadata, total_size: totalBytes }, weight_map: weightMap }
        const temp = join(options.dir, tempName(SAFETENSORS_INDEX_NAME))
        await writeFile(temp, `${JSON.stringify(index, null, 2)}\n`, { flag: 'wx' })
        await rename(temp, join(options.dir, SAFETENSORS_INDEX_NAME))
        files.push(SAFETENSORS_INDEX_NAME)
      }
      return { files, totalBytes }
    },
    async abort() {
      await closeAll()
      await removeTemps()
    },
  }
}
