import { createRoute, z } from '@hono/zod-openapi'
import { and, desc, eq, lt } from 'drizzle-orm'
import { database } from '../db/client.ts'
import { moderationEvents } from '../db/schema.ts'
import { requireScope } from '../middleware/auth.ts'
import { unixSeconds } from '../unix-seconds.ts'
import { bearerSecurity, errorResponses, jsonResponse, listQuerySchema, listSchema, toList } from './api-schemas.ts'
import { createRouter } from './router.ts'

type EventRow = typeof moderationEvents.$inferSelect

const eventSchema = z
  .object({
    id: z.string(),
    object: z.literal('moderation.event'),
    source: z.string(),
    direction: z.string(),
    action: z.string(),
    categories: z.array(z.string()),
    scores: z.record(z.string(), z.number()),
    key_id: z.string().nullable(),
    request_id: z.string(),
    created_at: z.number().int(),
  })
  .openapi('ModerationEvent')

function eventView(row: EventRow) {
  return {
    id: row.id,
    object: 'moderation.event' as const,
    source: row.source,
    direction: row.direction,
    action: row.action,
    categories: row.categories,
    scores: row.scores,
    key_id: row.keyId,
    request_id: row.requestId,
    created_at: unixSeconds(row.createdAt),
  }
}

const list = createRoute({
  method: 'get',
  path: '/v1/moderation/events',
  tags: ['moderation'],
  summary: 'What moderation flagged, observed or acted on in proxied traffic, newest first (never the text)',
  security: bearerSecurity,
  middleware: [requireScope('moderation')] as const,
  request: { query: listQuerySchema },
  responses: { 200: jsonResponse(listSchema(eventSchema), 'Events'), ...errorResponses },
})

export function moderationEventRoutes() {
  return createRouter().openapi(list, async (c) => {
    const { limit, after } = c.req.valid('query')
    const rows = await database(c.env)
      .select()
      .from(moderationEvents)
      .where(and(eq(moderationEvents.tenantId, c.get('auth').tenantId), after ? lt(moderationEvents.id, after) : undefined))
      .orderBy(desc(moderationEvents.id))
      .limit(limit + 1)
    return c.json(toList(rows, limit, eventView), 200)
  })
}
