import { and, eq } from 'drizzle-orm'
import { randomString } from '../../shared/ids.ts'
import type { MergeParams } from '../../shared/job-types.ts'
import { referencedModels, type MergeConfig } from '../../shared/merge-config.ts'
import { database } from '../db/client.ts'
import { modelVersions } from '../db/schema.ts'
import type { Env } from '../env.ts'
import { ApiError } from '../errors.ts'
import { filesOf, findModel } from '../models/model-store.ts'
import { resolveVersion } from './create-job.ts'

// Resolves the models a merge config names — `<model id>` (its production
// version, else its newest) or `<model id>/<version>` — to their files, and
// picks the version the output becomes, before the job is queued: a merge
// that cannot run is refused here, not on a runner.

export type MergeOptions = {
  outputModel?: string | undefined
  outputVersion?: string | undefined
  seed: number
  refuseNonFinite: boolean
}

export function parseModelRef(ref: string): { model: string; version?: string } {
  const slash = ref.indexOf('/')
  if (slash < 0) return { model: ref }
  return { model: ref.slice(0, slash), version: ref.slice(slash + 1) }
}

export async function mergeParams(env: Env, tenantId: string, config: MergeConfig, options: MergeOptions): Promise<MergeParams> {
  const db = database(env)
  const models: MergeParams['models'] = {}
  for (const ref of referencedModels(config)) {
    const version = await resolveVersion(env, tenantId, parseModelRef(ref)).catch((error: unknown) => {
      if (error instanceof ApiError && error.status === 404) throw new ApiError(404, `No model or version '${ref}' in this tenant`, { code: 'model_not_found', param: 'models' })
      throw error
    })
    const files = (await filesOf(db, [version.id])).get(version.id) ?? []
    if (!files.some((file) => file.name.endsWith('.safetensors'))) {
      throw new ApiError(409, `Version ${version.version} of ${version.modelId} has no safetensors files to merge`, { code: 'not_safetensors', param: 'models' })
    }
    models[ref] = {
      model_id: version.modelId,
      version: version.version,
      files: files.map((file) => ({ name: file.name, artifact_key: file.artifactKey, sha256: file.sha256, size: file.size })),
    }
  }

  const defaultRef = config.base_model ?? referencedModels(config)[0]!
  const output = await findModel(db, tenantId, options.outputModel ?? models[defaultRef]!.model_id)
  const version = options.outputVersion ?? `merge-${randomString(10)}`
  const [taken] = await db
    .select({ id: modelVersions.id })
    .from(modelVersions)
    .where(and(eq(modelVersions.modelId, output.id), eq(modelVersions.version, version)))
  if (taken) throw new ApiError(409, `Model ${output.id} already has a version '${version}'`, { code: 'version_exists', param: 'output_version' })

  return {
    config: config as Record<string, unknown>,
    models,
    output: { model_id: output.id, version },
    seed: options.seed,
    refuse_non_finite: options.refuseNonFinite,
  }
}
