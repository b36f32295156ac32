import type { BatchInferenceParams } from '../../shared/job-types.ts'
import { database } from '../db/client.ts'
import type { Env } from '../env.ts'
import { ApiError } from '../errors.ts'
import { findUpload } from '../artifacts/multipart-upload.ts'
import { servedModel } from './served-model.ts'

export type BatchInferenceRequest = { type: 'batch_inference'; model: string; version?: string | undefined; input_artifact: string }

// The model version to run and the uploaded JSONL file of instances, both the
// tenant's; the runner gets what it needs to check both by hash.
export async function batchInferenceParams(env: Env, tenantId: string, request: BatchInferenceRequest): Promise<BatchInferenceParams> {
  const served = await servedModel(database(env), tenantId, request.model, request.version)
  const upload = await findUpload(env, tenantId, request.input_artifact)
  if ((upload.status !== 'completed' && upload.status !== 'attached') || !upload.sha256) {
    throw new ApiError(409, `Upload ${upload.id} is ${upload.status}; a batch needs a completed upload`, { code: 'upload_not_completed', param: 'input_artifact' })
  }
  return {
    model_id: served.model.id,
    version: served.version.version,
    model_artifact: served.artifact,
    probe: served.version.probe ?? null,
    input_name: served.inputName,
    row_dims: served.rowDims,
    labels: served.model.labels ?? null,
    input: { name: upload.filename, artifact_key: upload.artifactKey, sha256: upload.sha256, size: upload.bytes },
  }
}
