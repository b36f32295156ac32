import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify as toYaml } from 'yaml'
import type { ArtifactRef, MergeResult } from '../../shared/job-types.ts'
import { MergeConfigError, validateMergeConfig } from '../../shared/merge-config.ts'
import { SafetensorsError } from '../../shared/safetensors-header.ts'
import { uploadArtifactFile } from '../artifact-upload.ts'
import { JobError } from '../job-error.ts'
import type { JobContext } from '../job-registry.ts'
import { defaultThreads } from '../merge/cpu/kernel-runner.ts'
import { planMerge } from '../merge/merge-plan.ts'
import { createMergeRunner, parseMergeDevice } from '../merge/merge-runner.ts'
import { MergeError } from '../merge/merge-tensor.ts'
import { openConfigModels } from '../merge/open-models.ts'
import { companionFiles, runMerge } from '../merge/run-merge.ts'

// A merge job: fetch every file of every input version through the verified
// cache, lay each version out as a model directory (links into the cache, so
// nothing is copied), merge as the CLI does, and upload the output files. The
// edge registers them as the new version when the result arrives. Progress is
// in bytes while downloading, then in tensors.

function asJobError(error: unknown): unknown {
  if (error instanceof MergeConfigError) return new JobError(`invalid merge config: ${error.message}`, 'invalid_config', { cause: error })
  if (error instanceof SafetensorsError) return new JobError(error.message, 'invalid_model', { cause: error })
  if (error instanceof MergeError) return new JobError(error.message, 'merge_failed', { cause: error })
  return error
}

export async function mergeModels(context: JobContext<'merge'>): Promise<MergeResult> {
  const { params, signal } = context
  const started = performance.now()
  const work = await mkdtemp(join(tmpdir(), 'moat-merge-'))
  try {
    const config = validateMergeConfig(params.config)
    const refs = Object.entries(params.models)
    const downloadTotal = refs.reduce((sum, [, model]) => sum + model.files.reduce((s, file) => s + file.size, 0), 0)
    let downloaded = 0
    const dirs = new Map<string, string>()
    for (const [index, [ref, model]] of refs.entries()) {
      const dir = join(work, 'models', String(index))
      await mkdir(dir, { recursive: true })
      for (const file of model.files) await linkVerified(context, file, dir, (bytes) => context.reportProgress({ done: downloaded + bytes, total: downloadTotal, unit: 'bytes' }))
      downloaded += model.files.reduce((sum, file) => sum + file.size, 0)
      dirs.set(ref, dir)
    }

    const opened = await openConfigModels(config, (ref) => {
      const dir = dirs.get(ref)
      if (!dir) throw new JobError(`the config names ${ref}, which the job's parameters do not resolve`, 'invalid_config')
      return dir
    })
    try {
      const plan = planMerge(config, opened.models)
      const tokenizerModel = config.tokenizer_source && config.tokenizer_source !== 'base' ? config.tokenizer_source : (config.base_model ?? plan.tensors[0]?.inputs[0]?.model)
      const outDir = join(work, 'out')
      const extraFiles = [
        { name: 'mergekit_config.yml', content: toYaml(params.config) },
        ...(tokenizerModel ? await companionFiles(dirs.get(tokenizerModel)!, plan.layers) : []),
      ]
      // The runner host's choice, not the job's: MOAT_MERGE_DEVICE=webgpu where it has a GPU.
      const runner = await createMergeRunner({ device: parseMergeDevice(process.env.MOAT_MERGE_DEVICE ?? 'cpu', 'MOAT_MERGE_DEVICE'), threads: defaultThreads() })
      const outcome = await runMerge({
        plan,
        outDir,
        runner,
        seed: params.seed,
        refuseNonFinite: params.refuse_non_finite,
        signal,
        onProgress: (progress) => context.reportProgress({ done: progress.tensorsDone, total: progress.tensorsTotal, unit: 'tensors' }),
        afterTensor: context.checkpoint,
        onNonFinite: (report) => context.logger.warn('non-finite values in a merge input', report),
        extraFiles,
      }).finally(() => runner.close())
      const files: ArtifactRef[] = []
      for (const name of outcome.files) {
        const uploaded = await uploadArtifactFile(context.edge, { jobId: context.job.job_id, filename: name, path: join(outDir, name), signal })
        files.push({ name, artifact_key: uploaded.artifact_key, sha256: uploaded.sha256, size: uploaded.size })
      }
      return {
        model_id: params.output.model_id,
        version: params.output.version,
        files,
        tensors: plan.tensors.length,
        input_bytes: plan.inputBytes,
        output_bytes: plan.outputBytes,
        runner_seconds: Math.round((performance.now() - started) / 10) / 100,
        non_finite: outcome.nonFinite,
      }
    } finally {
      await opened.close()
    }
  } catch (error) {
    throw asJobError(error)
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}

async function linkVerified(context: JobContext<'merge'>, file: ArtifactRef, dir: string, onBytes: (bytes: number) => void): Promise<void> {
  const outcome = await context.cache.fetchVerified(file, { signal: context.signal, onBytes })
  if (outcome.status === 'missing') throw new JobError(`input file ${file.name} (${file.artifact_key}) is missing`, 'artifact_missing')
  if (outcome.status === 'mismatch') throw new JobError(`input file ${file.name} does not match its SHA-256`, 'artifact_mismatch')
  await symlink(outcome.path, join(dir, file.name))
}
