import { createRoute, z } from '@hono/zod-openapi'
import { createId } from '../../shared/ids.ts'
import { database } from '../db/client.ts'
import { tenants } from '../db/schema.ts'
import { requireAdminToken } from '../middleware/auth.ts'
import { idempotency } from '../middleware/idempotency.ts'
import { bearerSecurity, errorResponses, jsonBody, jsonResponse } from './api-schemas.ts'
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

export function adminTenantRoutes() {
  return createRouter().openapi(createTenant, async (c) => {
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
