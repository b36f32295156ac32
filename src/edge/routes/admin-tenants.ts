import { createRoute, z } from '@hono/zod-openapi'
import { eq } from 'drizzle-orm'
import type { QuotaLimit } from '../../shared/billing/quota-period.ts'
import { createId } from '../../shared/ids.ts'
import { notFound } from '../errors.ts'
import { database } from '../db/client.ts'
import { tenants } from '../db/schema.ts'
import { requireAdminToken } from '../middleware/auth.ts'
import { idempotency } from '../middleware/idempotency.ts'
import { bearerSecurity, errorResponses, idParam, jsonBody, jsonResponse } from './api-schemas.ts'
import { limitsBody, limitStatus, limitStatusSchema } from './usage.ts'
import { issueApiKey } from './keys.ts'
import { createRouter } from './router.ts'
import { unixSeconds } from '../unix-seconds.ts'

const tenantSchema = z
  .object({ id: z.string(), object: z.literal('tenant'), name: z.string(), created_at: z.number().int() })
  .openapi('Tenant')

const createTenant = createRoute({
  method: 'post',
  path: '/admin/tenants',
  tags: ['operator'],
  summary: 'Create a tenant and its first admin key (MOAT_ADMIN_TOKEN)',
  security: bearerSecurity,
  middleware: [requireAdminToken(), idempotency()] as const,
  request: { body: jsonBody(z.strictObject({ name: z.string().min(1).max(200) })) },
  responses: {
    201: jsonResponse(
      z.object({ tenant: tenantSchema, api_key: z.object({ key: z.string() }).passthrough() }),
      'The tenant and its admin key, shown this once',
    ),
    ...errorResponses,
  },
})

const setLimits = createRoute({
  method: 'put',
  path: '/admin/tenants/{id}/limits',
  tags: ['operator'],
  summary: 'Set a tenant’s usage limits, its plan (an empty list removes them); over a limit, requests get 429 quota_exceeded',
  security: bearerSecurity,
  middleware: [requireAdminToken()] as const,
  request: { params: z.object({ id: idParam('id') }), body: jsonBody(limitsBody) },
  responses: { 200: jsonResponse(z.object({ object: z.literal('list'), data: z.array(limitStatusSchema) }), 'The limits and their use'), ...errorResponses },
})

export function adminTenantRoutes() {
  return createRouter()
    .openapi(setLimits, async (c) => {
      const { id } = c.req.valid('param')
      const limits = c.req.valid('json').limits as QuotaLimit[]
      const [updated] = await database(c.env).update(tenants).set({ usageLimits: limits }).where(eq(tenants.id, id)).returning({ id: tenants.id })
      if (!updated) throw notFound('tenant', 'id')
      return c.json(await limitStatus(c.env, id, limits), 200)
    })
    .openapi(createTenant, async (c) => {
    const { name } = c.req.valid('json')
    const db = database(c.env)
    const now = Date.now()
    const [tenant] = await db.insert(tenants).values({ id: createId('tenant', now), name, createdAt: now }).returning()
    const apiKey = await issueApiKey(db, tenant!.id, 'admin', ['admin'])
    return c.json(
      { tenant: { id: tenant!.id, object: 'tenant' as const, name: tenant!.name, created_at: unixSeconds(now) }, api_key: apiKey },
      201,
    )
  })
}
