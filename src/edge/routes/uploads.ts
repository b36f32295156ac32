import { createRoute, z } from '@hono/zod-openapi'
import { SHA256_HEX } from '../../shared/encoding.ts'
import { fileNameSchema } from '../artifacts/artifact-names.ts'
import { requireContentLength } from '../artifacts/hashing-stream.ts'
import {
  cancelUpload,
  completeUpload,
  createUpload,
  findUpload,
  MAX_PART_BYTES,
  putUploadPart,
  uploadView,
} from '../artifacts/multipart-upload.ts'
import { ApiError } from '../errors.ts'
import { requireScope } from '../middleware/auth.ts'
import { idempotency } from '../middleware/idempotency.ts'
import { meterUsage } from '../usage/meter-usage.ts'
import {
  bearerSecurity,
  conflictResponse,
  errorResponses,
  idParam,
  jsonBody,
  jsonResponse,
  tooLargeResponse,
  unprocessableResponse,
} from './api-schemas.ts'
import { createRouter } from './router.ts'

export const MAX_UPLOAD_BYTES = 64 * 1024 ** 3

const uploadSchema = z
  .object({
    id: z.string(),
    object: z.literal('upload'),
    bytes: z.number().int(),
    filename: z.string(),
    purpose: z.string(),
    status: z.string(),
    created_at: z.number().int(),
    expires_at: z.number().int(),
    received_bytes: z.number().int(),
    next_part: z.number().int(),
    part_size: z.number().int().nullable(),
    sha256: z.string().nullable(),
  })
  .openapi('Upload')

const createUploadSchema = z.strictObject({
  filename: fileNameSchema,
  purpose: z.enum(['model', 'batch_input']).default('model'),
  bytes: z.number().int().min(1).max(MAX_UPLOAD_BYTES),
  mime_type: z.string().min(1).max(200).optional(),
})

const uploadParams = z.object({ id: idParam('id') })

const create = createRoute({
  method: 'post',
  path: '/v1/uploads',
  tags: ['uploads'],
  security: bearerSecurity,
  middleware: [requireScope('uploads:write'), idempotency()] as const,
  request: { body: jsonBody(createUploadSchema) },
  responses: { 201: jsonResponse(uploadSchema, 'A pending upload'), ...errorResponses },
})

const get = createRoute({
  method: 'get',
  path: '/v1/uploads/{id}',
  tags: ['uploads'],
  security: bearerSecurity,
  middleware: [requireScope('uploads:write')] as const,
  request: { params: uploadParams },
  responses: { 200: jsonResponse(uploadSchema, 'The upload'), ...errorResponses },
})

const putPart = createRoute({
  method: 'put',
  path: '/v1/uploads/{id}/parts/{part}',
  tags: ['uploads'],
  summary: 'Upload part N (from 1, in order); every part but the last has the size of the first, at least 5 MiB',
  security: bearerSecurity,
  middleware: [requireScope('uploads:write')] as const,
  request: {
    params: uploadParams.extend({
      // Decimal digits only: a plain coercion would take '1e3' or '0x10' for a part number.
      part: z
        .string()
        .regex(/^(?:[1-9][0-9]{0,3}|10000)$/, 'must be a part number from 1 to 10000')
        .transform(Number)
        .openapi({ param: { name: 'part', in: 'path' } }),
    }),
    body: { required: true, content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } } },
  },
  responses: { 200: jsonResponse(uploadSchema, 'The upload after this part'), ...errorResponses, ...conflictResponse, ...tooLargeResponse },
})

const complete = createRoute({
  method: 'post',
  path: '/v1/uploads/{id}/complete',
  tags: ['uploads'],
  security: bearerSecurity,
  middleware: [requireScope('uploads:write')] as const,
  request: {
    params: uploadParams,
    body: jsonBody(z.strictObject({ sha256: z.string().regex(SHA256_HEX, 'must be 64 lowercase hex characters') })),
  },
  responses: {
    200: jsonResponse(uploadSchema, 'The completed upload'),
    ...errorResponses,
    ...conflictResponse,
    ...unprocessableResponse,
  },
})

const cancel = createRoute({
  method: 'post',
  path: '/v1/uploads/{id}/cancel',
  tags: ['uploads'],
  security: bearerSecurity,
  middleware: [requireScope('uploads:write')] as const,
  request: { params: uploadParams },
  responses: { 200: jsonResponse(uploadSchema, 'The cancelled upload'), ...errorResponses, ...conflictResponse },
})

export function uploadRoutes() {
  return createRouter()
    .openapi(create, async (c) => {
      const body = c.req.valid('json')
      const row = await createUpload(c.env, {
        tenantId: c.get('auth').tenantId,
        filename: body.filename,
        purpose: body.purpose,
        bytes: body.bytes,
        mimeType: body.mime_type ?? null,
      })
      return c.json(uploadView(row), 201)
    })
    .openapi(get, async (c) => c.json(uploadView(await findUpload(c.env, c.get('auth').tenantId, c.req.valid('param').id)), 200))
    .openapi(putPart, async (c) => {
      const { id, part } = c.req.valid('param')
      const upload = await findUpload(c.env, c.get('auth').tenantId, id)
      const length = requireContentLength(c.req.header('content-length'), MAX_PART_BYTES, 'A part')
      const body = c.req.raw.body
      if (!body) throw new ApiError(400, 'Missing body', { code: 'missing_body' })
      const updated = await putUploadPart(c.env, upload, { partNumber: part, body, length })
      await meterUsage(c, 'artifacts.bytes', length)
      return c.json(uploadView(updated), 200)
    })
    .openapi(complete, async (c) => {
      const upload = await findUpload(c.env, c.get('auth').tenantId, c.req.valid('param').id)
      return c.json(uploadView(await completeUpload(c.env, upload, c.req.valid('json').sha256)), 200)
    })
    .openapi(cancel, async (c) => {
      const upload = await findUpload(c.env, c.get('auth').tenantId, c.req.valid('param').id)
      return c.json(uploadView(await cancelUpload(c.env, upload)), 200)
    })
}
