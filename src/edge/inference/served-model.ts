import { and, desc, eq, like } from 'drizzle-orm'
import type { ArtifactRef } from '../../shared/job-types.ts'
import { rowDims } from '../../shared/model-io.ts'
import type { Database } from '../db/client.ts'
import { modelFiles, models, modelVersions } from '../db/schema.ts'
import { ApiError, notFound } from '../errors.ts'
import type { ModelRow, VersionRow } from '../models/model-store.ts'

export type ServedModel = {
  model: ModelRow
  version: VersionRow
  artifact: ArtifactRef
  inputName: string
  rowDims: number[]
}

// What a prediction serves is read at most every SERVED_TTL_MS per isolate:
// a promotion reaches every isolate within that time. Files are immutable,
// so nothing else a prediction uses can go stale.
const SERVED_TTL_MS = 2000
const served = new Map<string, { at: number; value: Promise<ServedModel> }>()

export function servedModel(db: Database, tenantId: string, modelId: string, versionName?: string): Promise<ServedModel> {
  const key = `${tenantId}/${modelId}/${versionName ?? ''}`
  const now = Date.now()
  const hit = served.get(key)
  if (hit && now - hit.at < SERVED_TTL_MS) return hit.value
  const value = readServedModel(db, tenantId, modelId, versionName)
  if (served.size >= 1000) served.clear()
  served.set(key, { at: now, value })
  value.catch(() => served.delete(key))
  return value
}

// The version a prediction uses: the one named by `?version=`, else the one
// in production. It must hold an ONNX file a runner has inspected. One query.
async function readServedModel(db: Database, tenantId: string, modelId: string, versionName?: string): Promise<ServedModel> {
  const [row] = await db
    .select({ model: models, version: modelVersions, file: modelFiles })
    .from(models)
    .leftJoin(
      modelVersions,
      and(eq(modelVersions.modelId, models.id), versionName ? eq(modelVersions.version, versionName) : eq(modelVersions.stage, 'production')),
    )
    .leftJoin(modelFiles, and(eq(modelFiles.versionId, modelVersions.id), like(modelFiles.name, '%.onnx')))
    .where(and(eq(models.id, modelId), eq(models.tenantId, tenantId)))
    .orderBy(desc(modelVersions.createdAt))
    .limit(1)
  if (!row) throw notFound('model', 'id')
  const { model, version, file } = row
  if (model.format !== 'onnx') {
    throw new ApiError(400, `Model ${model.id} is ${model.format}; hosted inference serves ONNX models`, { code: 'model_not_servable' })
  }
  if (!version && versionName) throw notFound('model version', 'version')
  if (!version) throw new ApiError(409, `Model ${model.id} has no version in production; name one with ?version=`, { code: 'no_production_version' })
  const input = version.io?.inputs[0]
  if (!file || !input) throw new ApiError(409, `Version ${version.version} has no inspected ONNX file to serve`, { code: 'version_not_servable' })
  const dims = rowDims(input, model.input)
  if (!dims) throw new ApiError(409, `The model's input '${input.name}' has symbolic dimensions; declare input.shape at registration`, { code: 'version_not_servable' })
  return {
    model,
    version,
    artifact: { name: file.name, artifact_key: file.artifactKey, sha256: file.sha256, size: file.size },
    inputName: input.name,
    rowDims: dims,
  }
}
