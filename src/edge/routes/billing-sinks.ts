import { createRoute, z } from '@hono/zod-openapi'
import { and, desc, eq, isNull, lt } from 'drizzle-orm'
import { createId } from '../../shared/ids.ts'
import { checkOutboundUrl } from '../../shared/outbound-url.ts'
import { SINK_PROVIDERS } from '../billing/sink-providers.ts'
import { database, type Database } from '../db/client.ts'
import { billingSinks, sinkDeliveries } from '../db/schema.ts'
import { ApiError, notFound } from '../errors.ts'
import { requireScope } from '../middleware/auth.ts'
import { idempotency } from '../middleware/idempotency.ts'
import { secretBox } from '../secrets.ts'
import { readSettings } from '../settings.ts'
import { unixSeconds } from '../unix-seconds.ts'
import { bearerSecurity, errorResponses, idParam, jsonBody, jsonResponse, listQuerySchema, listSchema, toList } from './api-schemas.ts'
import { createRouter } from './router.ts'

type SinkRow = typeof billingSinks.$inferSelect
type SinkDeliveryRow = typeof sinkDeliveries.$inferSelect

const DEFAULT_URLS: Record<(typeof SINK_PROVIDERS)[number], string> = {
  stripe: 'https://api.stripe.com',
  openmeter: 'https://openmeter.cloud',
  lago: 'https://api.getlago.com',
}

const sinkSchema = z
  .object({ id: z.string(), object: z.literal('billing_sink'), provider: z.string(), url: z.string(), customer: z.string(), created_at: z.number().int() })
  .openapi('BillingSink')

const sinkDeliverySchema = z
  .object({
    id: z.string(),
    object: z.literal('billing_sink.delivery'),
    status: z.string(),
    events: z.number().int(),
    sent: z.number().int(),
    skipped: z.array(z.object({ id: z.string(), reason: z.string() })),
    attempts: z.number().int(),
    last_error: z.string().nullable(),
    created_at: z.number().int(),
    delivered_at: z.number().int().nullable(),
  })
  .openapi('BillingSinkDelivery')

const createSchema = z.strictObject({
  provider: z.enum(SINK_PROVIDERS),
  url: z.string().max(2048).optional(),
  credential: z.string().min(1).max(500),
  customer: z.string().min(1).max(200),
})

function sinkView(row: SinkRow) {
  return { id: row.id, object: 'billing_sink' as const, provider: row.provider, url: row.url, customer: row.customer, created_at: unixSeconds(row.createdAt) }
}

function deliveryView(row: SinkDeliveryRow) {
  return {
    id: row.id,
    object: 'billing_sink.delivery' as const,
    status: row.status,
    events: row.eventIds.length,
    sent: row.sent,
    skipped: row.skipped ?? [],
    attempts: row.attempts,
    last_error: row.lastError,
    created_at: unixSeconds(row.createdAt),
    delivered_at: unixSeconds(row.deliveredAt),
  }
}

async function findSink(db: Database, tenantId: string, id: string): Promise<SinkRow> {
  const [row] = await db
    .select()
    .from(billingSinks)
    .where(and(eq(billingSinks.id, id), eq(billingSinks.tenantId, tenantId), isNull(billingSinks.deletedAt)))
  if (!row) throw notFound('billing sink', 'id')
  return row
}

const common = { tags: ['billing'], security: bearerSecurity }
const sinkParams = z.object({ id: idParam('id') })

const create = createRoute({
  method: 'post',
  path: '/v1/billing/sinks',
  ...common,
  summary: 'Push this tenant’s usage to Stripe, OpenMeter or Lago (the credential is stored sealed, never returned)',
  middleware: [requireScope('admin'), idempotency()] as const,
  request: { body: jsonBody(createSchema) },
  responses: { 201: jsonResponse(sinkSchema, 'The sink'), ...errorResponses },
})

const list = createRoute({
  method: 'get',
  path: '/v1/billing/sinks',
  ...common,
  middleware: [requireScope('admin')] as const,
  request: { query: listQuerySchema },
  responses: { 200: jsonResponse(listSchema(sinkSchema), 'Sinks'), ...errorResponses },
})

const remove = createRoute({
  method: 'delete',
  path: '/v1/billing/sinks/{id}',
  ...common,
  middleware: [requireScope('admin')] as const,
  request: { params: sinkParams },
  responses: { 200: jsonResponse(z.object({ id: z.string(), deleted: z.literal(true) }), 'Deleted'), ...errorResponses },
})

const deliveries = createRoute({
  method: 'get',
  path: '/v1/billing/sinks/{id}/deliveries',
  ...common,
  summary: 'Batches sent to the sink, with events the provider would refuse listed as skipped',
  middleware: [requireScope('admin')] as const,
  request: { params: sinkParams, query: listQuerySchema },
  responses: { 200: jsonResponse(listSchema(sinkDeliverySchema), 'Deliveries, newest first'), ...errorResponses },
})

export function billingSinkRoutes() {
  return createRouter()
    .openapi(create, async (c) => {
      const body = c.req.valid('json')
      const check = checkOutboundUrl(body.url ?? DEFAULT_URLS[body.provider], readSettings(c.env).outbound)
      if (!check.ok) throw new ApiError(400, `Sink URL refused: ${check.reason}`, { code: 'url_not_allowed', param: 'url' })
      const id = createId('sink')
      const sealedCredential = await (await secretBox(c.env)).seal(body.credential, `sink:${id}`)
      const [row] = await database(c.env)
        .insert(billingSinks)
        .values({ id, tenantId: c.get('auth').tenantId, provider: body.provider, url: check.url.toString(), customer: body.customer, sealedCredential, createdAt: Date.now() })
        .returning()
      return c.json(sinkView(row!), 201)
    })
    .openapi(list, async (c) => {
      const { limit, after } = c.req.valid('query')
      const rows = await database(c.env)
        .select()
        .from(billingSinks)
        .where(and(eq(billingSinks.tenantId, c.get('auth').tenantId), isNull(billingSinks.deletedAt), after ? lt(billingSinks.id, after) : undefined))
        .orderBy(desc(billingSinks.id))
        .limit(limit + 1)
      return c.json(toList(rows, limit, sinkView), 200)
    })
    .openapi(remove, async (c) => {
      const db = database(c.env)
      const sink = await findSink(db, c.get('auth').tenantId, c.req.valid('param').id)
      await db.update(billingSinks).set({ deletedAt: Date.now() }).where(eq(billingSinks.id, sink.id)).run()
      return c.json({ id: sink.id, deleted: true as const }, 200)
    })
    .openapi(deliveries, async (c) => {
      const db = database(c.env)
      const sink = await findSink(db, c.get('auth').tenantId, c.req.valid('param').id)
      const { limit, after } = c.req.valid('query')
      const rows = await db
        .select()
        .from(sinkDeliveries)
        .where(and(eq(sinkDeliveries.sinkId, sink.id), after ? lt(sinkDeliveries.id, after) : undefined))
        .orderBy(desc(sinkDeliveries.id))
        .limit(limit + 1)
      return c.json(toList(rows, limit, deliveryView), 200)
    })
}
