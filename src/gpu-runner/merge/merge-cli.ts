import { readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { parseArgs } from 'node:util'
import { MergeConfigError, parseMergeConfig } from '../../shared/merge-config.ts'
import { SafetensorsError } from '../../shared/safetensors-header.ts'
import { DEFAULT_SHARD_BYTES } from '../tensors/sharded-writer.ts'
import { defaultThreads } from './cpu/kernel-runner.ts'
import { planMerge, type MergePlan } from './merge-plan.ts'
import { createMergeRunner, parseMergeDevice } from './merge-runner.ts'
import { MergeError } from './merge-tensor.ts'
import { openConfigModels, relativeTo } from './open-models.ts'
import { createProgressBar } from './progress-bar.ts'
import { companionFiles, runMerge } from './run-merge.ts'

// `moat merge CONFIG.yml OUT_DIR`: a mergekit-compatible merge of local
// safetensors models (paths in the config are relative to the config file).

export const MERGE_USAGE = `Usage: moat merge CONFIG.yml OUT_DIR [options]

Merges local safetensors models (single files or sharded with an index) as a
mergekit config describes, and writes sharded safetensors with an index.
Model paths in the config are relative to the config file.

Options:
  --dry-run               print the plan (every output tensor, its sources and method) and stop
  --threads N             kernel threads (default: ${defaultThreads()}, the cores available)
  --device DEVICE         where kernels run: cpu (default) or webgpu (WGSL shaders
                          through Dawn for the element-wise ops and the TIES/DARE
                          combine, the rest on the CPU threads; needs a Vulkan
                          driver, or VK_ICD_FILENAMES for SwiftShader)
  --out-shard-size SIZE   largest output shard, bytes or with K/M/B/G (default 5B, as mergekit)
  --seed N                seed for DARE and DELLA masks (default 0)
  --refuse-non-finite     fail when an input holds NaN or infinity (default: report and go on)
  --no-progress           no progress bar
  -h, --help              this help
`

export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmbg]?)b?$/i.exec(text.trim())
  if (!match) throw new MergeError(`--out-shard-size: cannot read ${JSON.stringify(text)} (try 2B, 500M or a byte count)`)
  const unit = match[2]!.toUpperCase()
  const factor = unit === 'K' ? 1e3 : unit === 'M' ? 1e6 : unit === 'B' || unit === 'G' ? 1e9 : 1
  const bytes = Math.floor(Number(match[1]) * factor)
  if (bytes < 1) throw new MergeError('--out-shard-size must be at least 1 byte')
  return bytes
}

export function describePlan(plan: MergePlan): string {
  const lines = plan.tensors.map((tensor) => {
    const sources = [...(tensor.base ? [{ ...tensor.base, role: 'base ' }] : []), ...tensor.inputs.map((input) => ({ ...input, role: '' }))]
    const from = sources
      .map((source) => {
        const params = Object.entries(source.params).filter(([, value]) => value !== undefined).map(([key, value]) => `${key}=${value}`)
        return `${source.role}${source.model}:${source.tensor.name}${params.length > 0 ? ` (${params.join(', ')})` : ''}`
      })
      .join(', ')
    const params = Object.entries(tensor.params).filter(([, value]) => value !== undefined).map(([key, value]) => `${key}=${value}`)
    return `${tensor.name} [${tensor.shape.join(', ')}] ${tensor.dtype} = ${plan.method}${params.length > 0 ? `(${params.join(', ')})` : ''} <- ${from}`
  })
  lines.push(`${plan.tensors.length} tensors, ${plan.layers} layers, ${(plan.inputBytes / 1e9).toFixed(3)} GB read, ${(plan.outputBytes / 1e9).toFixed(3)} GB written`)
  return `${lines.join('\n')}\n`
}

export async function main(args: string[]): Promise<void> {
  let parsed
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        'dry-run': { type: 'boolean', default: false },
        threads: { type: 'string' },
        device: { type: 'string', default: 'cpu' },
        'out-shard-size': { type: 'string' },
        seed: { type: 'string', default: '0' },
        'refuse-non-finite': { type: 'boolean', default: false },
        'no-progress': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
  } catch (error) {
    process.stderr.write(`moat merge: ${(error as Error).message}\n\n${MERGE_USAGE}`)
    process.exitCode = 2
    return
  }
  const { values, positionals } = parsed
  if (values.help) {
    process.stdout.write(MERGE_USAGE)
    return
  }
  const [configPath, outDir] = positionals
  if (!configPath || (!outDir && !values['dry-run']) || positionals.length > 2) {
    process.stderr.write(`moat merge: expected CONFIG.yml and OUT_DIR\n\n${MERGE_USAGE}`)
    process.exitCode = 2
    return
  }

  try {
    const device = parseMergeDevice(values.device)
    const threads = values.threads === undefined ? defaultThreads() : Number(values.threads)
    if (!Number.isInteger(threads) || threads < 1) throw new MergeError('--threads must be a positive integer')
    const seed = Number(values.seed)
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new MergeError('--seed must be an integer from 0 to 4294967295')
    const maxShardBytes = values['out-shard-size'] ? parseSize(values['out-shard-size']) : DEFAULT_SHARD_BYTES

    const text = await readFile(configPath, 'utf8')
    const config = parseMergeConfig(text)
    const opened = await openConfigModels(config, relativeTo(dirname(configPath)))
    try {
      const plan = planMerge(config, opened.models)
      if (values['dry-run']) {
        process.stdout.write(describePlan(plan))
        return
      }
      const tokenizerModel = config.tokenizer_source && config.tokenizer_source !== 'base' ? config.tokenizer_source : (config.base_model ?? plan.tensors[0]?.inputs[0]?.model)
      const extraFiles = [
        { name: 'mergekit_config.yml', content: text },
        ...(tokenizerModel ? await companionFiles(opened.dirs.get(tokenizerModel)!, plan.layers) : []),
      ]
      const bar = values['no-progress'] ? null : createProgressBar(process.stderr)
      // Opened after the plan, so a bad config fails before a GPU is looked for.
      const runner = await createMergeRunner({ device, threads })
      const started = Date.now()
      const outcome = await runMerge({
        plan,
        outDir: outDir!,
        runner,
        maxShardBytes,
        seed,
        refuseNonFinite: values['refuse-non-finite'],
        extraFiles,
        onProgress: (progress) => bar?.update(progress),
        onNonFinite: (report) => {
          bar?.clear()
          process.stderr.write(`warning: tensor ${report.tensor} of ${report.model} holds ${report.count} NaN or infinite values\n`)
        },
      }).finally(() => runner.close())
      bar?.finish()
      const seconds = (Date.now() - started) / 1000
      process.stderr.write(
        `merged ${plan.tensors.length} tensors into ${outDir} in ${seconds.toFixed(1)} s (${(plan.inputBytes / 1e9 / Math.max(seconds, 1e-3)).toFixed(2)} GB/s read): ${outcome.files.join(', ')}\n`,
      )
    } finally {
      await opened.close()
    }
  } catch (error) {
    if (error instanceof MergeConfigError || error instanceof MergeError || error instanceof SafetensorsError || (error as NodeJS.ErrnoException).code === 'ENOENT') {
      process.stderr.write(`moat merge: ${(error as Error).message}\n`)
      process.exitCode = 1
      return
    }
    throw error
  }
}
