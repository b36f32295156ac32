import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeSyntheticModel, type LlamaShape } from '../scripts/merge-fixtures/synthetic-model.ts'

// End to end: `moat merge` (a TIES merge of a base and two fine-tunes) on a
// sharded, llama-shaped synthetic model of about 1.5 GB per model in bf16,
// generated into a temporary directory. Prints throughput and the merge
// process's peak RSS (VmHWM, threads included), then deletes everything.

const SHAPE: LlamaShape = {
  layers: Number(process.env.BENCH_LAYERS ?? 12),
  hidden: 2048,
  intermediate: 5632,
  vocab: 32000,
}
const METHOD = process.env.BENCH_METHOD ?? 'ties'

// One random block reused at a different offset per tensor: generating 750 M
// fresh values per model would take longer than the merge being measured.
const BLOCK = Float32Array.from({ length: (1 << 22) + 7919 }, (_, i) => (((Math.imul(i, 2654435761) >>> 0) / 4294967296) - 0.5) * 0.1)

function values(seed: number, noise: number) {
  let offset = seed * 104729
  return (name: string, count: number) => {
    const out = new Float32Array(count)
    for (let i = 0; i < count; i++) out[i] = (name.includes('norm') ? 1 : 0) + BLOCK[(i + offset) % BLOCK.length]! + noise * BLOCK[(i * 3 + seed) % BLOCK.length]!
    offset += 7
    return out
  }
}

async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')
  const match = /VmHWM:\s+(\d+) kB/.exec(status)
  return match ? Number(match[1]) * 1024 : 0
}

const dir = await mkdtemp(join(tmpdir(), 'moat-bench-merge-'))
try {
  const started = performance.now()
  const models = ['base', 'a', 'b']
  for (const [i, name] of models.entries()) {
    await writeSyntheticModel({ dir: join(dir, name), shape: SHAPE, dtype: 'BF16', maxShardBytes: 500_000_000, values: values(i, i === 0 ? 0 : 0.2) })
  }
  console.log(`generated 3 models in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  const config = `merge_method: ${METHOD}
base_model: base
models:
  - {model: a, parameters: {weight: 0.5, density: 0.5}}
  - {model: b, parameters: {weight: 0.5, density: 0.5}}
dtype: bfloat16
`
  await writeFile(join(dir, 'merge.yml'), config)
  const bin = join(import.meta.dirname, '../bin/moat.js')
  const mergeStarted = performance.now()
  const child = spawn(process.execPath, [bin, 'merge', join(dir, 'merge.yml'), join(dir, 'out'), '--no-progress', '--out-shard-size', '500M'], { stdio: ['ignore', 'inherit', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  let peak = 0
  const sampler = setInterval(() => {
    peakRss(child.pid!).then((rss) => (peak = Math.max(peak, rss)))
  }, 50)
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  clearInterval(sampler)
  const seconds = (performance.now() - mergeStarted) / 1000
  if (code !== 0) throw new Error(`moat merge failed (${code}): ${stderr}`)
  console.log(stderr.trim())
  const elements = 2 * SHAPE.vocab * SHAPE.hidden + SHAPE.layers * (4 * SHAPE.hidden * SHAPE.hidden + 3 * SHAPE.hidden * SHAPE.intermediate + 2 * SHAPE.hidden) + SHAPE.hidden
  const modelBytes = elements * 2
  console.log(`| method | model size (bf16) | inputs read | wall | GB/s of input | peak RSS |`)
  console.log(`|---|---|---|---|---|---|`)
  console.log(`| ${METHOD} | ${(modelBytes / 1e9).toFixed(2)} GB | ${((modelBytes * 3) / 1e9).toFixed(2)} GB | ${seconds.toFixed(1)} s | ${((modelBytes * 3) / 1e9 / seconds).toFixed(2)} | ${(peak / 2 ** 20).toFixed(0)} MB |`)
} finally {
  await rm(dir, { recursive: true, force: true })
}
