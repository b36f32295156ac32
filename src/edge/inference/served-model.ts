import { and, desc, eq } from 'drizzle-orm'
import type { ArtifactRef } from '../../shared/job-types.ts'
import { rowDims } from '../../shared/model-io.ts'
import type { Database } from '../db/client.ts'
import { modelFiles, modelVersions } from '../db/schema.ts'
import { ApiError } from '../errors.ts'
import { findModel, findVersion, type ModelRow, type VersionRow } from '../models/model-store.ts'

export type ServedModel = {
  model: ModelRow
  version: VersionRow
  artifact: ArtifactRef
  inputName: string
  rowDims: number[]
}

// The version a prediction uses: the one named by `?version=`, else the one
// in production. It must hold an ONNX file a runner has inspected.
export async function servedModel(db: Database, tenantId: string, modelId: string, versionName?: string): Promise<ServedModel> {
  const model = await findModel(db, tenantId, modelId)
  if (model.format !== 'onnx') {
    throw new ApiError(400, `Model ${model.id} is ${model.format}; hosted inference serves ONNX models`, { code: 'model_not_servable' })
  }
  let version: VersionRow | undefined
  if (versionName) version = await findVersion(db, model, versionName)
  else {
    ;[version] = await db
      .select()
      .from(modelVersions)
      .where(and(eq(modelVersions.modelId, model.id), eq(modelVersions.stage, 'production')))
      .orderBy(desc(modelVersions.createdAt))
      .limit(1)
  }
  if (!version) throw new ApiError(409, `Model ${model.id} has no version in production; name one with ?version=`, { code: 'no_production_version' })
  const [file] = await db.select().from(modelFiles).where(eq(modelFiles.versionId, version.id))
  const input = version.io?.inputs[0]
  if (!file || !file.name.endsWith('.onnx') || !input) {
    throw new ApiError(409, `Version ${version.version} has no inspected ONNX file to serve`, { code: 'version_not_servable' })
  }
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
