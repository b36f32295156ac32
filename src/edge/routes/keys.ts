import { createRoute, z } from '@hono/zod-openapi'
import { and, desc, eq, lt } from 'drizzle-orm'
import { createId } from '../../shared/ids.ts'
import { mintApiKey } from '../auth/api-key.ts'
import { DEFAULT_KEY_SCOPES, SCOPES } from '../auth/scopes.ts'
import { database, type Database } from '../db/client.ts'
import { apiKeys } from '../db/schema.ts'
import { notFound } from '../errors.ts'
import { idempotency } from '../middleware/idempotency.ts'
import { requireScope } from '../middleware/auth.ts'
import {
  bearerSecurity,
  errorResponses,
  idParam,
  jsonBody,
  jsonResponse,
  listQuerySchema,
  listSchema,
  toList,
} from './api-schemas.ts'
import { createRouter } from './router.ts'
import { unixSeconds } from '../unix-seconds.ts'

type KeyRow = typeof apiKeys.$inferSelect

export const apiKeySchema = z
  .object({
    id: z.string(),
    object: z.literal('api_key'),
    name: z.string(),
    prefix: z.string(),
    scopes: z.array(z.string()),
    created_at: z.number().int(),
    last_used_at: z.number().int().nullable(),
    revoked_at: z.number().int().nullable(),
  })
  .openapi('ApiKey')

const createdKeySchema = apiKeySchema.extend({ key: z.string() }).openapi('CreatedApiKey')

export const createKeySchema = z.strictObject({
  name: z.string().min(1).max(200),
  scopes: z.array(z.enum(SCOPES)).min(1).optional(),
})

export function apiKeyView(row: KeyRow) {
  return {
    id: row.id,
    object: 'api_key' as const,
    name: row.name,
    prefix: row.prefix,
    scopes: row.scopes,
    created_at: unixSeconds(row.createdAt),
    last_used_at: unixSeconds(row.lastUsedAt),
    revoked_at: unixSeconds(row.revokedAt),
  }
}

// Creates a key and returns it with the secret, the only time it is shown.
export async function issueApiKey(db: Database, tenantId: string, name: string, scopes: string[]) {
  const minted = await mintApiKey()
  const [row] = await db
    .insert(apiKeys)
    .values({ id: createId('key'), tenantId, name, keyHash: minted.hash, prefix: minted.prefix, scopes, createdAt: Date.now() })
    .returning()
  return { ...apiKeyView(row!), key: minted.key }
}

// Revokes a key of the tenant (once: a revoked key keeps its first revocation
// time); undefined when the tenant has no such key.
export async function revokeApiKey(db: Database, tenantId: string, id: string): Promise<KeyRow | undefined> {
  const [existing] = await db.select().from(apiKeys).where(and(eq(apiKeys.id, id), eq(apiKeys.tenantId, tenantId)))
  if (!existing || existing.revokedAt !== null) return existing
  const [revoked] = await db.update(apiKeys).set({ revokedAt: Date.now() }).where(eq(apiKeys.id, id)).returning()
  return revoked
}

const create = createRoute({
  method: 'post',
  path: '/v1/keys',
  tags: ['keys'],
  security: bearerSecurity,
  middleware: [requireScope('admin'), idempotency()] as const,
  request: { body: jsonBody(createKeySchema) },
  responses: { 201: jsonResponse(createdKeySchema, 'The key, shown this once'), ...errorResponses },
})

const list = createRoute({
  method: 'get',
  path: '/v1/keys',
  tags: ['keys'],
  security: bearerSecurity,
  middleware: [requireScope('admin')] as const,
  request: { query: listQuerySchema },
  responses: { 200: jsonResponse(listSchema(apiKeySchema), 'Keys of this tenant, newest first'), ...errorResponses },
})

const revoke = createRoute({
  method: 'delete',
  path: '/v1/keys/{id}',
  tags: ['keys'],
  security: bearerSecurity,
  middleware: [requireScope('admin')] as const,
  request: { params: z.object({ id: idParam('id') }) },
  responses: { 200: jsonResponse(apiKeySchema, 'The revoked key'), ...errorResponses },
})

export function keyRoutes() {
  return createRouter()
    .openapi(create, async (c) => {
      const body = c.req.valid('json')
      const key = await issueApiKey(database(c.env), c.get('auth').tenantId, body.name, body.scopes ?? DEFAULT_KEY_SCOPES)
      return c.json(key, 201)
    })
    .openapi(list, async (c) => {
      const { limit, after } = c.req.valid('query')
      const tenantId = c.get('auth').tenantId
      const rows = await database(c.env)
        .select()
        .from(apiKeys)
        .where(and(eq(apiKeys.tenantId, tenantId), after ? lt(apiKeys.id, after) : undefined))
        .orderBy(desc(apiKeys.id))
        .limit(limit + 1)
      return c.json(toList(rows, limit, apiKeyView), 200)
    })
    .openapi(revoke, async (c) => {
      const { id } = c.req.valid('param')
      const revoked = await revokeApiKey(database(c.env), c.get('auth').tenantId, id)
      if (!revoked) throw notFound('api key', 'id')
      return c.json(apiKeyView(revoked), 200)
    })
}
