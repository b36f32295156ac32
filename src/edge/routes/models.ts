import { createRoute, z } from '@hono/zod-openapi'
import { and, desc, eq, lt } from 'drizzle-orm'
import { createId } from '../../shared/ids.ts'
import { maskingPolicySchema } from '../../shared/masking/mask-probabilities.ts'
import { versionNameSchema } from '../artifacts/artifact-names.ts'
import { database } from '../db/client.ts'
import { models, modelVersions } from '../db/schema.ts'
import { ApiError } from '../errors.ts'
import { requireScope } from '../middleware/auth.ts'
import { idempotency } from '../middleware/idempotency.ts'
import { filesOf, findModel, findVersion, modelView, versionView } from '../models/model-store.ts'
import { setVersionStage, STAGES } from '../models/set-version-stage.ts'
import {
  bearerSecurity,
  conflictResponse,
  errorResponses,
  idParam,
  jsonBody,
  jsonResponse,
  listQuerySchema,
  listSchema,
  toList,
} from './api-schemas.ts'
import { createRouter } from './router.ts'

export const MODEL_TASKS = ['classification', 'regression', 'embedding', 'causal-lm', 'other'] as const

const registerModelSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._-]{1,100}$/, 'use 1-100 letters, digits, dots, dashes or underscores'),
  format: z.enum(['onnx', 'safetensors']),
  task: z.enum(MODEL_TASKS),
  labels: z.array(z.string().min(1).max(200)).min(1).max(100_000).optional(),
  input: z.strictObject({ shape: z.array(z.number().int().min(-1)).min(1).max(8), dtype: z.string().min(1).max(32) }).optional(),
  // The model's own policy (API.md, Policies): `masking` is checked here; the
  // guard section when a request uses it.
  policy: z.object({ masking: maskingPolicySchema.optional() }).catchall(z.unknown()).optional(),
})

const modelSchema = z
  .object({
    id: z.string(),
    object: z.literal('model'),
    name: z.string(),
    format: z.string(),
    task: z.string(),
    labels: z.array(z.string()).nullable(),
    input: z.object({ shape: z.array(z.number()), dtype: z.string() }).nullable(),
    policy: z.record(z.string(), z.unknown()).nullable(),
    created_at: z.number().int(),
  })
  .openapi('Model')

export const modelFileSchema = z
  .object({
    name: z.string(),
    sha256: z.string(),
    size: z.number().int(),
    verification: z.string(),
    verified_at: z.number().int().nullable(),
    created_at: z.number().int(),
  })
  .openapi('ModelFile')

export const versionSchema = z
  .object({
    id: z.string(),
    object: z.literal('model.version'),
    model_id: z.string(),
    version: z.string(),
    stage: z.string(),
    verification: z.string(),
    verified_at: z.number().int().nullable(),
    created_at: z.number().int(),
    files: z.array(modelFileSchema),
  })
  .openapi('ModelVersion')

const modelParams = z.object({ id: idParam('id') })
export const versionParams = z.object({
  id: idParam('id'),
  version: versionNameSchema.openapi({ param: { name: 'version', in: 'path' } }),
})

const register = createRoute({
  method: 'post',
  path: '/v1/models',
  tags: ['models'],
  security: bearerSecurity,
  middleware: [requireScope('models:write'), idempotency()] as const,
  request: { body: jsonBody(registerModelSchema) },
  responses: { 201: jsonResponse(modelSchema, 'The registered model'), ...errorResponses, ...conflictResponse },
})

const list = createRoute({
  method: 'get',
  path: '/v1/models',
  tags: ['models'],
  security: bearerSecurity,
  middleware: [requireScope('models:read')] as const,
  request: { query: listQuerySchema },
  responses: { 200: jsonResponse(listSchema(modelSchema), 'Models, newest first'), ...errorResponses },
})

const get = createRoute({
  method: 'get',
  path: '/v1/models/{id}',
  tags: ['models'],
  security: bearerSecurity,
  middleware: [requireScope('models:read')] as const,
  request: { params: modelParams },
  responses: {
    200: jsonResponse(modelSchema.extend({ versions: z.array(versionSchema) }), 'The model with its versions'),
    ...errorResponses,
  },
})

const getVersion = createRoute({
  method: 'get',
  path: '/v1/models/{id}/versions/{version}',
  tags: ['models'],
  security: bearerSecurity,
  middleware: [requireScope('models:read')] as const,
  request: { params: versionParams },
  responses: { 200: jsonResponse(versionSchema, 'The version and its files'), ...errorResponses },
})

const updateVersion = createRoute({
  method: 'patch',
  path: '/v1/models/{id}/versions/{version}',
  tags: ['models'],
  summary: 'Move a version to another stage; promoting to production archives the previous production version',
  security: bearerSecurity,
  middleware: [requireScope('models:write')] as const,
  request: { params: versionParams, body: jsonBody(z.strictObject({ stage: z.enum(STAGES) })) },
  responses: { 200: jsonResponse(versionSchema, 'The version'), ...errorResponses, ...conflictResponse },
})

const metrics = createRoute({
  method: 'get',
  path: '/v1/models/{id}/versions/{version}/metrics',
  tags: ['models'],
  summary: 'Served traffic per window: requests, error rate, latency, predicted classes, top-1 confidence, and drift against the reference window',
  security: bearerSecurity,
  middleware: [requireScope('models:read')] as const,
  request: { params: versionParams },
  responses: { 200: jsonResponse(z.object({ window_seconds: z.number(), reference: z.string().nullable(), windows: z.array(z.record(z.string(), z.unknown())) }), 'Metrics, newest window first'), ...errorResponses },
})

export function modelRoutes() {
  return createRouter()
    .openapi(register, async (c) => {
      const body = c.req.valid('json')
      const now = Date.now()
      const [row] = await database(c.env)
        .insert(models)
        .values({ id: createId('model', now), tenantId: c.get('auth').tenantId, ...body, createdAt: now })
        .onConflictDoNothing()
        .returning()
      if (!row) throw new ApiError(409, `A model named '${body.name}' already exists`, { code: 'model_exists', param: 'name' })
      return c.json(modelView(row), 201)
    })
    .openapi(list, async (c) => {
      const { limit, after } = c.req.valid('query')
      const rows = await database(c.env)
        .select()
        .from(models)
        .where(and(eq(models.tenantId, c.get('auth').tenantId), after ? lt(models.id, after) : undefined))
        .orderBy(desc(models.id))
        .limit(limit + 1)
      return c.json(toList(rows, limit, modelView), 200)
    })
    .openapi(get, async (c) => {
      const db = database(c.env)
      const model = await findModel(db, c.get('auth').tenantId, c.req.valid('param').id)
      const versions = await db.select().from(modelVersions).where(eq(modelVersions.modelId, model.id)).orderBy(desc(modelVersions.createdAt))
      const files = await filesOf(db, versions.map((v) => v.id))
      return c.json({ ...modelView(model), versions: versions.map((v) => versionView(v, files.get(v.id) ?? [])) }, 200)
    })
    .openapi(metrics, async (c) => {
      const { id, version } = c.req.valid('param')
      const db = database(c.env)
      const row = await findVersion(db, await findModel(db, c.get('auth').tenantId, id), version)
      const report = await c.env.MODEL_MONITOR.get(c.env.MODEL_MONITOR.idFromName(row.id)).report()
      return c.json(report, 200)
    })
    .openapi(getVersion, async (c) => {
      const { id, version } = c.req.valid('param')
      const db = database(c.env)
      const row = await findVersion(db, await findModel(db, c.get('auth').tenantId, id), version)
      const files = await filesOf(db, [row.id])
      return c.json(versionView(row, files.get(row.id) ?? []), 200)
    })
    .openapi(updateVersion, async (c) => {
      const { id, version } = c.req.valid('param')
      const { stage } = c.req.valid('json')
      const db = database(c.env)
      const model = await findModel(db, c.get('auth').tenantId, id)
      const row = await findVersion(db, model, version)
      const files = (await filesOf(db, [row.id])).get(row.id) ?? []
      const updated = await setVersionStage(db, model, row, files, stage)
      return c.json(versionView(updated, files), 200)
    })
}
