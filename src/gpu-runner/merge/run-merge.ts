import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { SAFETENSORS_DTYPE_SIZES } from '../../shared/safetensors-header.ts'
import { encodedSize } from '../tensors/dtype-codec.ts'
import type { ModelTensor } from '../tensors/safetensors-model.ts'
import { createShardedWriter, DEFAULT_SHARD_BYTES, existingModelFiles } from '../tensors/sharded-writer.ts'
import { createArrayPool, type ArrayPool } from './array-pool.ts'
import { createKernelRunner, type KernelRunner } from './cpu/kernel-runner.ts'
import type { MergePlan, PlannedSource, PlannedTensor } from './merge-plan.ts'
import { countNonFinite, MergeError, mergeTensor, type MergeInput } from './merge-tensor.ts'
import { createStagingPool, encodeOnRunner, readTensorOnRunner, type StagingPool } from './threaded-codec.ts'

// Runs a plan tensor by tensor: read the inputs of one output tensor (the
// next one's reads overlap this one's merge), merge, encode, write at its
// place in its shard. Peak memory is a couple of tensors' worth, whatever
// the model's size. On any failure the partial shards are removed.

export type MergeProgress = { tensorsDone: number; tensorsTotal: number; bytesDone: number; bytesTotal: number }

export type NonFiniteReport = { tensor: string; model: string; count: number }

export type RunMergeOptions = {
  plan: MergePlan
  outDir: string
  threads?: number
  runner?: KernelRunner
  maxShardBytes?: number
  seed?: number
  // Refuse inputs holding NaN or infinity instead of reporting them.
  refuseNonFinite?: boolean
  signal?: AbortSignal
  onProgress?: (progress: MergeProgress) => void
  // Awaited after each output tensor is written (a job's checkpoint).
  afterTensor?: () => Promise<void>
  onNonFinite?: (report: NonFiniteReport) => void
  // Files beside the weights: the config as given, config.json and tokenizer files.
  extraFiles?: { name: string; content: string | Uint8Array }[]
}

export type MergeOutcome = { files: string[]; totalBytes: number; nonFinite: NonFiniteReport[] }

const ENCODE_CHUNK = 1 << 22

type Readers = { pool: ArrayPool; staging: StagingPool; runner: KernelRunner }

type Source = { array: Float32Array; nonFinite: number }

async function readSource(readers: Readers, source: PlannedSource, shape: number[]): Promise<Source> {
  const count = shape.reduce((a, b) => a * b, 1)
  const out = readers.pool.take(count)
  const own = elementsOf(source.tensor)
  if (own === count) return { array: out, nonFinite: await readTensorOnRunner(readers.runner, readers.staging, source.tensor, out) }
  // An embedding of another vocabulary size: its own rows, the rest from the tokenizer source.
  const rowSize = shape.slice(1).reduce((a, b) => a * b, 1)
  const whole = new Float32Array(own)
  await source.tensor.file.readFloat32(source.tensor, whole)
  out.set(whole.subarray(0, Math.min(own, source.rows * rowSize)))
  if (source.rows * rowSize < count) {
    if (!source.fill) throw new MergeError(`${source.tensor.name} of ${source.model} has ${source.rows} rows, ${shape[0]} needed, and no tokenizer_source to fill them from`)
    const fill = new Float32Array(elementsOf(source.fill))
    await source.fill.file.readFloat32(source.fill, fill)
    out.set(fill.subarray(source.rows * rowSize, count), source.rows * rowSize)
  }
  const [nonFinite] = await countNonFinite(readers.runner, [out])
  return { array: out, nonFinite: nonFinite! }
}

function elementsOf(tensor: ModelTensor): number {
  return (tensor.end - tensor.begin) / SAFETENSORS_DTYPE_SIZES[tensor.dtype]
}

// Non-finite counts run base first, then the inputs in order.
type Loaded = { base: Float32Array | null; inputs: Float32Array[]; nonFinite: number[] }

async function load(readers: Readers, tensor: PlannedTensor): Promise<Loaded> {
  const read = await Promise.allSettled([
    tensor.base ? readSource(readers, tensor.base, tensor.shape) : null,
    ...tensor.inputs.map((input) => readSource(readers, input, tensor.shape)),
  ])
  const sources = read.flatMap((result) => (result.status === 'fulfilled' && result.value ? [result.value] : []))
  const failed = read.find((result) => result.status === 'rejected')
  if (failed) {
    // The arrays that were read go back to the pool; nothing else will release them.
    readers.pool.release(sources.map((source) => source.array))
    throw failed.reason
  }
  const [base, ...inputs] = read.map((result) => (result as PromiseFulfilledResult<Source | null>).value)
  return { base: base?.array ?? null, inputs: inputs.map((input) => input!.array), nonFinite: sources.map((source) => source.nonFinite) }
}

export async function runMerge(options: RunMergeOptions): Promise<MergeOutcome> {
  const { plan, outDir } = options
  await mkdir(outDir, { recursive: true })
  const existing = await existingModelFiles(outDir)
  if (existing.length > 0) throw new MergeError(`${outDir} already holds model files (${existing.slice(0, 3).join(', ')}); choose an empty directory`)

  const runner = options.runner ?? createKernelRunner({ threads: options.threads })
  const writer = await createShardedWriter({
    dir: outDir,
    tensors: plan.tensors.map((tensor) => ({ name: tensor.name, dtype: tensor.dtype, shape: tensor.shape })),
    maxShardBytes: options.maxShardBytes ?? DEFAULT_SHARD_BYTES,
    metadata: { format: 'pt' },
  })
  const readers: Readers = { pool: createArrayPool(), staging: createStagingPool(), runner }
  const pool = readers.pool
  const nonFinite: NonFiniteReport[] = []
  const progress: MergeProgress = { tensorsDone: 0, tensorsTotal: plan.tensors.length, bytesDone: 0, bytesTotal: plan.inputBytes }
  options.onProgress?.({ ...progress })

  // Started ahead; a failure surfaces when it is awaited, never as an unhandled rejection.
  const prefetch = (index: number) => {
    const tensor = plan.tensors[index]
    if (!tensor) return null
    const promise = load(readers, tensor)
    promise.catch(() => {})
    return promise
  }

  try {
    let next = prefetch(0)
    for (const [index, tensor] of plan.tensors.entries()) {
      options.signal?.throwIfAborted()
      const loaded = await next!
      next = prefetch(index + 1)
      const sources = [...(tensor.base ? [tensor.base] : []), ...tensor.inputs]
      const arrays = [...(loaded.base ? [loaded.base] : []), ...loaded.inputs]
      for (const [i, count] of loaded.nonFinite.entries()) {
        if (count === 0) continue
        const report = { tensor: tensor.name, model: sources[i]!.model, count }
        if (options.refuseNonFinite) throw new MergeError(`tensor ${tensor.name} of ${report.model} holds ${count} NaN or infinite values`)
        nonFinite.push(report)
        options.onNonFinite?.(report)
      }

      const inputs: MergeInput[] = tensor.inputs.map((input, i) => ({ model: input.model, data: loaded.inputs[i]!, params: input.params }))
      const merged = await mergeTensor(runner, {
        name: tensor.name,
        method: plan.method,
        shape: tensor.shape,
        base: loaded.base,
        inputs,
        params: tensor.params,
        seed: options.seed ?? 0,
      })
      // Encoded on the kernel threads into a shared buffer, a slice at a time.
      const buffer = new Uint8Array(new SharedArrayBuffer(Math.max(1, encodedSize(tensor.dtype, Math.min(ENCODE_CHUNK, merged.length)))))
      for (let start = 0; start < merged.length; start += ENCODE_CHUNK) {
        const end = Math.min(merged.length, start + ENCODE_CHUNK)
        await encodeOnRunner(runner, tensor.dtype, merged, buffer, start, end)
        await writer.write(tensor.name, buffer.subarray(0, encodedSize(tensor.dtype, end - start)), encodedSize(tensor.dtype, start))
      }
      if (merged.length === 0) await writer.write(tensor.name, new Uint8Array(0))
      // The result lives in one of the inputs' arrays: all go back together.
      pool.release(arrays)
      progress.tensorsDone++
      progress.bytesDone += sources.reduce((sum, source) => sum + (source.tensor.end - source.tensor.begin), 0)
      options.onProgress?.({ ...progress })
      await options.afterTensor?.()
    }
    for (const file of options.extraFiles ?? []) await writeFile(join(outDir, file.name), file.content)
    const { files, totalBytes } = await writer.commit()
    return { files: [...(options.extraFiles ?? []).map((file) => file.name), ...files], totalBytes, nonFinite }
  } catch (error) {
    await writer.abort()
    throw error
  } finally {
    if (!options.runner) await runner.close()
  }
}

// The files a merged model needs beside its weights, taken from the model
// that supplies the tokenizer (else the base, else the first): config.json
// with the output's layer count, and the tokenizer files, copied as they are.
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model', 'generation_config.json']

export async function companionFiles(modelDir: string, layers: number): Promise<{ name: string; content: string | Uint8Array }[]> {
  const files: { name: string; content: string | Uint8Array }[] = []
  const config = await readFile(join(modelDir, 'config.json'), 'utf8').catch(() => null)
  if (config !== null) {
    let parsed: Record<string, unknown>
    try {
      parsed = JSON.parse(config) as Record<string, unknown>
    } catch {
      throw new MergeError(`${join(modelDir, 'config.json')} is not valid JSON`)
    }
    if (typeof parsed.num_hidden_layers === 'number') parsed.num_hidden_layers = layers
    files.push({ name: 'config.json', content: `${JSON.stringify(parsed, null, 2)}\n` })
  }
  for (const name of TOKENIZER_FILES) {
    const content = await readFile(join(modelDir, name)).catch(() => null)
    if (content) files.push({ name, content: new Uint8Array(content) })
  }
  return files
}

