import { createRoute, z } from '@hono/zod-openapi'
import { and, desc, eq, isNull, lt, or } from 'drizzle-orm'
import { createId } from '../../shared/ids.ts'
import { checkOutboundUrl } from '../../shared/outbound-url.ts'
import { newWebhookSecret } from '../../shared/standard-webhooks.ts'
import { isValidSubscription } from '../../shared/webhook-events.ts'
import { database, type Database } from '../db/client.ts'
import { webhookDeliveries, webhooks } from '../db/schema.ts'
import { ApiError, notFound } from '../errors.ts'
import { requireScope } from '../middleware/auth.ts'
import { idempotency } from '../middleware/idempotency.ts'
import { secretBox } from '../secrets.ts'
import { readSettings } from '../settings.ts'
import { unixSeconds } from '../unix-seconds.ts'
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

type WebhookRow = typeof webhooks.$inferSelect
type DeliveryRow = typeof webhookDeliveries.$inferSelect

const webhookSchema = z
  .object({
    id: z.string(),
    object: z.literal('webhook'),
    url: z.string(),
    events: z.array(z.string()),
    description: z.string().nullable(),
    created_at: z.number().int(),
  })
  .openapi('Webhook')

const deliverySchema = z
  .object({
    id: z.string(),
    object: z.literal('webhook.delivery'),
    event_id: z.string(),
    event_type: z.string(),
    status: z.string(),
    attempts: z.number().int(),
    last_status: z.number().int().nullable(),
    last_error: z.string().nullable(),
    created_at: z.number().int(),
    delivered_at: z.number().int().nullable(),
  })
  .openapi('WebhookDelivery')

const createSchema = z.strictObject({
  url: z.string().max(2048),
  events: z
    .array(z.string().refine(isValidSubscription, 'an event type (job.succeeded), a family (job.*) or *'))
    .min(1)
    .max(50),
  description: z.string().max(500).optional(),
})

function webhookView(row: WebhookRow) {
  return {
    id: row.id,
    object: 'webhook' as const,
    url: row.url,
    events: row.events,
    description: row.description,
    created_at: unixSeconds(row.createdAt),
  }
}

function deliveryView(row: DeliveryRow) {
  return {
    id: row.id,
    object: 'webhook.delivery' as const,
    event_id: row.eventId,
    event_type: row.eventType,
    status: row.status,
    attempts: row.attempts,
    last_status: row.lastStatus,
    last_error: row.lastError,
    created_at: unixSeconds(row.createdAt),
    delivered_at: unixSeconds(row.deliveredAt),
  }
}

async function findWebhook(db: Database, tenantId: string, id: string): Promise<WebhookRow> {
  const [row] = await db
    .select()
    .from(webhooks)
    .where(and(eq(webhooks.id, id), eq(webhooks.tenantId, tenantId), isNull(webhooks.deletedAt)))
  if (!row) throw notFound('webhook', 'id')
  return row
}

const webhookParams = z.object({ id: idParam('id') })
const security = { tags: ['webhooks'], security: bearerSecurity }

const create = createRoute({
  method: 'post',
  path: '/v1/webhooks',
  ...security,
  summary: 'Register an endpoint; the signing secret (Standard Webhooks, whsec_…) is shown once',
  middleware: [requireScope('admin'), idempotency()] as const,
  request: { body: jsonBody(createSchema) },
  responses: { 201: jsonResponse(webhookSchema.extend({ secret: z.string() }), 'The webhook and its secret'), ...errorResponses },
})

const list = createRoute({
  method: 'get',
  path: '/v1/webhooks',
  ...security,
  middleware: [requireScope('admin')] as const,
  request: { query: listQuerySchema },
  responses: { 200: jsonResponse(listSchema(webhookSchema), 'Webhooks, newest first'), ...errorResponses },
})

const remove = createRoute({
  method: 'delete',
  path: '/v1/webhooks/{id}',
  ...security,
  middleware: [requireScope('admin')] as const,
  request: { params: webhookParams },
  responses: { 200: jsonResponse(z.object({ id: z.string(), deleted: z.literal(true) }), 'Deleted'), ...errorResponses },
})

const deliveries = createRoute({
  method: 'get',
  path: '/v1/webhooks/{id}/deliveries',
  ...security,
  summary: 'The delivery log, newest first',
  middleware: [requireScope('admin')] as const,
  request: { params: webhookParams, query: listQuerySchema },
  responses: { 200: jsonResponse(listSchema(deliverySchema), 'Deliveries'), ...errorResponses },
})

const redeliver = createRoute({
  method: 'post',
  path: '/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver',
  ...security,
  summary: 'Send a delivery again (same webhook-id, fresh signature)',
  middleware: [requireScope('admin')] as const,
  request: { params: webhookParams.extend({ delivery_id: idParam('delivery_id') }) },
  responses: { 202: jsonResponse(deliverySchema, 'Queued again'), ...errorResponses },
})

export function webhookRoutes() {
  return createRouter()
    .openapi(create, async (c) => {
      const body = c.req.valid('json')
      const check = checkOutboundUrl(body.url, readSettings(c.env).outbound)
      if (!check.ok) throw new ApiError(400, `Webhook URL refused: ${check.reason}`, { code: 'url_not_allowed', param: 'url' })
      const id = createId('wh')
      const secret = newWebhookSecret()
      const sealedSecret = await (await secretBox(c.env)).seal(secret, `webhook:${id}`)
      const [row] = await database(c.env)
        .insert(webhooks)
        .values({
          id,
          tenantId: c.get('auth').tenantId,
          url: check.url.toString(),
          events: [...new Set(body.events)],
          description: body.description ?? null,
          sealedSecret,
          createdAt: Date.now(),
        })
        .returning()
      return c.json({ ...webhookView(row!), secret }, 201)
    })
    .openapi(list, async (c) => {
      const { limit, after } = c.req.valid('query')
      const rows = await database(c.env)
        .select()
        .from(webhooks)
        .where(and(eq(webhooks.tenantId, c.get('auth').tenantId), isNull(webhooks.deletedAt), after ? lt(webhooks.id, after) : undefined))
        .orderBy(desc(webhooks.id))
        .limit(limit + 1)
      return c.json(toList(rows, limit, webhookView), 200)
    })
    .openapi(remove, async (c) => {
      const db = database(c.env)
      const row = await findWebhook(db, c.get('auth').tenantId, c.req.valid('param').id)
      await db.update(webhooks).set({ deletedAt: Date.now() }).where(eq(webhooks.id, row.id)).run()
      return c.json({ id: row.id, deleted: true as const }, 200)
    })
    .openapi(deliveries, async (c) => {
      const db = database(c.env)
      const hook = await findWebhook(db, c.get('auth').tenantId, c.req.valid('param').id)
      const { limit, after } = c.req.valid('query')
      // Delivery ids are derived from their event, not time-ordered: the
      // cursor is the position (created_at, id) of the delivery named by `after`.
      const [cursor] = after
        ? await db.select().from(webhookDeliveries).where(and(eq(webhookDeliveries.id, after), eq(webhookDeliveries.webhookId, hook.id)))
        : []
      const rows = await db
        .select()
        .from(webhookDeliveries)
        .where(
          and(
            eq(webhookDeliveries.webhookId, hook.id),
            cursor
              ? or(
                  lt(webhookDeliveries.createdAt, cursor.createdAt),
                  and(eq(webhookDeliveries.createdAt, cursor.createdAt), lt(webhookDeliveries.id, cursor.id)),
                )
              : undefined,
          ),
        )
        .orderBy(desc(webhookDeliveries.createdAt), desc(webhookDeliveries.id))
        .limit(limit + 1)
      return c.json(toList(rows, limit, deliveryView), 200)
    })
    .openapi(redeliver, async (c) => {
      const db = database(c.env)
      const { id, delivery_id } = c.req.valid('param')
      const hook = await findWebhook(db, c.get('auth').tenantId, id)
      const [row] = await db
        .update(webhookDeliveries)
        .set({ status: 'pending', lastError: null })
        .where(and(eq(webhookDeliveries.id, delivery_id), eq(webhookDeliveries.webhookId, hook.id)))
        .returning()
      if (!row) throw notFound('webhook delivery', 'delivery_id')
      await c.env.WEBHOOKS.send({ delivery_id: row.id })
      return c.json(deliveryView(row), 202)
    })
}
