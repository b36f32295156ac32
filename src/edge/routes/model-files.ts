import { createRoute, z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { createId } from '../../shared/ids.ts'
import { SHA256_HEX } from '../../shared/encoding.ts'
import { fileNameSchema } from '../artifacts/artifact-names.ts'
import { modelFileKey } from '../artifacts/artifact-names.ts'
import { requireContentLength } from '../artifacts/hashing-stream.ts'
import { findUpload } from '../artifacts/multipart-upload.ts'
import { storeArtifact } from '../artifacts/store-artifact.ts'
import { database } from '../db/client.ts'
import type { AppEnv } from '../env.ts'
import { ApiError } from '../errors.ts'
import { requireScope } from '../middleware/auth.ts'
import { idempotency } from '../middleware/idempotency.ts'
import {
  assertFileNameFree,
  findModel,
  findVersionIfAny,
  recordVersionFile,
  fileView,
  type ModelRow,
} from '../models/model-store.ts'
import { readSettings } from '../settings.ts'
import { inspectOnnxFile, isServedOnnxFile } from '../inference/onnx-registration.ts'
import { meterUsage } from '../usage/meter-usage.ts'
import {
  bearerSecurity,
  conflictResponse,
  errorResponses,
  jsonBody,
  jsonResponse,
  tooLargeResponse,
  unprocessableResponse,
} from './api-schemas.ts'
import { modelFileSchema, versionParams } from './models.ts'
import { createRouter } from './router.ts'

export const EXPECTED_SHA256_HEADER = 'x-moat-sha256'

const DEFAULT_FILE_NAME: Record<string, string> = { onnx: 'model.onnx', safetensors: 'model.safetensors' }

const fileParams = versionParams.extend({ name: fileNameSchema.openapi({ param: { name: 'name', in: 'path' } }) })

const binaryBody = {
  required: true,
  description: `The file's bytes (at most MOAT_MAX_ARTIFACT_BYTES). Send its SHA-256 in '${EXPECTED_SHA256_HEADER}' to have it checked.`,
  content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
}

const putResponses = {
  201: jsonResponse(modelFileSchema, 'The stored file with the SHA-256 computed while streaming'),
  ...errorResponses,
  ...conflictResponse,
  ...tooLargeResponse,
  ...unprocessableResponse,
}

const putFile = createRoute({
  method: 'put',
  path: '/v1/models/{id}/versions/{version}/files/{name}',
  tags: ['models'],
  security: bearerSecurity,
  middleware: [requireScope('models:write')] as const,
  request: { params: fileParams, body: binaryBody },
  responses: putResponses,
})

const putArtifact = createRoute({
  method: 'put',
  path: '/v1/models/{id}/versions/{version}/artifact',
  tags: ['models'],
  summary: 'The one file of a one-file version (model.onnx or model.safetensors)',
  security: bearerSecurity,
  middleware: [requireScope('models:write')] as const,
  request: { params: versionParams, body: binaryBody },
  responses: putResponses,
})

const attachUpload = createRoute({
  method: 'post',
  path: '/v1/models/{id}/versions/{version}/files',
  tags: ['models'],
  summary: 'Attach a completed upload to a version as a named file',
  security: bearerSecurity,
  middleware: [requireScope('models:write'), idempotency()] as const,
  request: { params: versionParams, body: jsonBody(z.strictObject({ upload_id: z.string().min(1).max(64), name: fileNameSchema })) },
  responses: { 201: jsonResponse(modelFileSchema, 'The attached file'), ...errorResponses, ...conflictResponse },
})

function expectedSha256(c: Context<AppEnv>): string | undefined {
  const header = c.req.header(EXPECTED_SHA256_HEADER)
  if (header === undefined) return undefined
  const value = header.trim().toLowerCase()
  if (!SHA256_HEX.test(value)) {
    throw new ApiError(400, `${EXPECTED_SHA256_HEADER} must be 64 hex characters`, { code: 'invalid_sha256', param: EXPECTED_SHA256_HEADER })
  }
  return value
}

async function putModelFile(c: Context<AppEnv>, modelId: string, version: string, name: ((model: ModelRow) => string)) {
  const length = requireContentLength(c.req.header('content-length'), readSettings(c.env).maxArtifactBytes, 'A model file')
  const expected = expectedSha256(c)
  const body = c.req.raw.body
  if (!body && length > 0) throw new ApiError(400, 'Missing body', { code: 'missing_body' })
  const db = database(c.env)
  const model = await findModel(db, c.get('auth').tenantId, modelId)
  const fileName = name(model)
  const existing = await findVersionIfAny(db, model, version)
  if (existing) await assertFileNameFree(db, existing, fileName)
  const fileId = createId('file')
  const stored = await storeArtifact(c.env, {
    key: modelFileKey(model.tenantId, model.id, version, fileId, fileName),
    body: body ?? new Blob([]).stream(),
    length,
    ...(expected ? { expectedSha256: expected } : {}),
  })
  let file
  try {
    const artifact = { name: fileName, artifact_key: stored.key, sha256: stored.sha256, size: stored.size }
    const inspection = isServedOnnxFile(model, fileName) ? await inspectOnnxFile(c.env, model, artifact) : undefined
    file = await recordVersionFile(db, model, version, { fileId, name: fileName, artifactKey: stored.key, sha256: stored.sha256, size: stored.size }, inspection)
  } catch (error) {
    await c.env.ARTIFACTS.delete(stored.key)
    throw error
  }
  await meterUsage(c, 'artifacts.bytes', stored.size)
  return c.json(fileView(file), 201)
}

export function modelFileRoutes() {
  return createRouter()
    .openapi(putFile, async (c) => {
      const { id, version, name } = c.req.valid('param')
      return putModelFile(c, id, version, () => name)
    })
    .openapi(putArtifact, async (c) => {
      const { id, version } = c.req.valid('param')
      return putModelFile(c, id, version, (model) => DEFAULT_FILE_NAME[model.format] ?? 'model.bin')
    })
    .openapi(attachUpload, async (c) => {
      const { id, version } = c.req.valid('param')
      const { upload_id, name } = c.req.valid('json')
      const db = database(c.env)
      const tenantId = c.get('auth').tenantId
      const model = await findModel(db, tenantId, id)
      const upload = await findUpload(c.env, tenantId, upload_id)
      if (upload.status !== 'completed' || !upload.sha256) {
        throw new ApiError(409, `Upload ${upload.id} is ${upload.status}; only a completed upload can be attached`, {
          code: 'upload_not_completed',
          param: 'upload_id',
        })
      }
      const existing = await findVersionIfAny(db, model, version)
      if (existing) await assertFileNameFree(db, existing, name)
      const claimed = await c.env.DB.prepare(`UPDATE uploads SET status = 'attached' WHERE id = ?1 AND status = 'completed' RETURNING id`)
        .bind(upload.id)
        .first()
      if (!claimed) throw new ApiError(409, `Upload ${upload.id} is already attached`, { code: 'upload_attached', param: 'upload_id' })
      try {
        const artifact = { name, artifact_key: upload.artifactKey, sha256: upload.sha256, size: upload.bytes }
        const inspection = isServedOnnxFile(model, name) ? await inspectOnnxFile(c.env, model, artifact) : undefined
        const file = await recordVersionFile(db, model, version, {
          fileId: createId('file'),
          name,
          artifactKey: upload.artifactKey,
          sha256: upload.sha256,
          size: upload.bytes,
        }, inspection)
        return c.json(fileView(file), 201)
      } catch (error) {
        await c.env.DB.prepare(`UPDATE uploads SET status = 'completed' WHERE id = ?1`).bind(upload.id).run()
        throw error
      }
    })
}
