import { createRoute, z } from '@hono/zod-openapi'
import { eq } from 'drizzle-orm'
import { database } from '../db/client.ts'
import { modelLineage } from '../db/schema.ts'
import { notFound } from '../errors.ts'
import { requireScope } from '../middleware/auth.ts'
import { findModel, findVersion } from '../models/model-store.ts'
import { unixSeconds } from '../unix-seconds.ts'
import { bearerSecurity, errorResponses, jsonResponse } from './api-schemas.ts'
import { versionParams } from './models.ts'
import { createRouter } from './router.ts'

// GET /v1/models/{id}/versions/{version}/lineage: where a version made by a
// job (a merge) came from. A version uploaded by hand has none (404).

const lineageSchema = z
  .object({
    object: z.literal('model.lineage'),
    model_id: z.string(),
    version: z.string(),
    job_id: z.string(),
    config: z.record(z.string(), z.unknown()),
    inputs: z.array(
      z.object({
        ref: z.string(),
        model_id: z.string(),
        version: z.string(),
        files: z.array(z.object({ name: z.string(), sha256: z.string() })),
      }),
    ),
    created_at: z.number().int(),
  })
  .openapi('ModelLineage')

const get = createRoute({
  method: 'get',
  path: '/v1/models/{id}/versions/{version}/lineage',
  tags: ['models'],
  security: bearerSecurity,
  middleware: [requireScope('models:read')] as const,
  request: { params: versionParams },
  responses: { 200: jsonResponse(lineageSchema, "The version's lineage"), ...errorResponses },
})

export function lineageRoutes() {
  return createRouter().openapi(get, async (c) => {
    const { id, version } = c.req.valid('param')
    const db = database(c.env)
    const row = await findVersion(db, await findModel(db, c.get('auth').tenantId, id), version)
    const [lineage] = await db.select().from(modelLineage).where(eq(modelLineage.versionId, row.id))
    if (!lineage) throw notFound('lineage', 'version')
    return c.json(
      {
        object: 'model.lineage' as const,
        model_id: row.modelId,
        version: row.version,
        job_id: lineage.jobId,
        config: lineage.config,
        inputs: lineage.inputs,
        created_at: unixSeconds(lineage.createdAt),
      },
      200,
    )
  })
}
