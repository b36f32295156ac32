import { createRoute, z } from '@hono/zod-openapi'
import { and, asc, desc, eq, gt, lt, or } from 'drizzle-orm'
import { GUARD_ACTIONS, guardPolicySchema } from '../../shared/guard/guard-policy.ts'
import { SIGNAL_NAMES } from '../../shared/guard/risk-score.ts'
import { database } from '../db/client.ts'
import { guardClients, guardEvents } from '../db/schema.ts'
import type { Env } from '../env.ts'
import { ApiError } from '../errors.ts'
import { guardStub } from '../guard/client-id.ts'
import { findGuardClient } from '../guard/find-guard-client.ts'
import type { ClientIdentity } from '../guard/guard-protocol.ts'
import { requireScope } from '../middleware/auth.ts'
import { unixSeconds } from '../unix-seconds.ts'
import { bearerSecurity, errorResponses, jsonBody, jsonResponse, listQuerySchema, listSchema, toList } from './api-schemas.ts'
import { createRouter } from './router.ts'

const signalSchema = z.object({
  signal: z.enum(SIGNAL_NAMES),
  value: z.number(),
  threshold: z.number(),
  strength: z.number(),
  detail: z.string(),
})

const clientSchema = z
  .object({
    object: z.literal('guard.client'),
    id: z.string(),
    key_id: z.string(),
    end_user: z.string().nullable(),
    risk: z.number(),
    action: z.enum(GUARD_ACTIONS),
    signals: z.array(signalSchema),
    state_bytes: z.number().int(),
    updated_at: z.number().int(),
  })
  .openapi('GuardClient')

const liveClientSchema = clientSchema.extend({
  action_since: z.number().int().nullable(),
  in_flight: z.number().int(),
  policy: z.record(z.string(), z.unknown()),
})

const eventSchema = z
  .object({
    object: z.literal('guard.event'),
    id: z.string(),
    type: z.enum(['escalated', 'reset']),
    client_id: z.string(),
    key_id: z.string(),
    end_user: z.string().nullable(),
    model: z.string().nullable(),
    action: z.enum(GUARD_ACTIONS),
    previous_action: z.enum(GUARD_ACTIONS),
    risk: z.number(),
    signals: z.array(signalSchema),
    created_at: z.number().int(),
  })
  .openapi('GuardEvent')

// A client id is a key id, or a key id and an end-user id joined by `~`.
const clientParam = z
  .object({ client_id: z.string().min(1).max(200).openapi({ param: { name: 'client_id', in: 'path' }, example: 'key_01J…~user-42' }) })

type ClientRow = typeof guardClients.$inferSelect
const clientView = (row: ClientRow) => ({
  object: 'guard.client' as const,
  id: row.clientId,
  key_id: row.keyId,
  end_user: row.endUser,
  risk: row.risk / 1e4,
  action: row.action,
  signals: row.signals as z.infer<typeof signalSchema>[],
  state_bytes: row.stateBytes,
  updated_at: unixSeconds(row.updatedAt),
})

type EventRow = typeof guardEvents.$inferSelect
const eventView = (row: EventRow) => ({
  object: 'guard.event' as const,
  id: row.id,
  type: row.type,
  client_id: row.clientId,
  key_id: row.keyId,
  end_user: row.endUser,
  model: row.modelId,
  action: row.action,
  previous_action: row.previousAction,
  risk: row.risk / 1e4,
  signals: row.signals as z.infer<typeof signalSchema>[],
  created_at: unixSeconds(row.createdAt),
})


const listClients = createRoute({
  method: 'get',
  path: '/v1/guard/clients',
  tags: ['guard'],
  summary: "The tenant's clients the guard has seen: risk score, signals and current action, highest risk first",
  security: bearerSecurity,
  middleware: [requireScope('admin')] as const,
  request: { query: listQuerySchema.extend({ action: z.enum(GUARD_ACTIONS).optional().openapi({ param: { name: 'action', in: 'query' } }) }) },
  responses: { 200: jsonResponse(listSchema(clientSchema), 'Clients'), ...errorResponses },
})

const getClient = createRoute({
  method: 'get',
  path: '/v1/guard/clients/{client_id}',
  tags: ['guard'],
  summary: "A client's standing, read live from its guard object, with the key's own guard policy",
  security: bearerSecurity,
  middleware: [requireScope('admin')] as const,
  request: { params: clientParam },
  responses: { 200: jsonResponse(liveClientSchema, 'The client'), ...errorResponses },
})

const putPolicy = createRoute({
  method: 'put',
  path: '/v1/guard/clients/{client_id}/policy',
  tags: ['guard'],
  summary: "The key's (or end user's) own guard policy: limits, thresholds, actions; it overrides the model's or route's field by field",
  security: bearerSecurity,
  middleware: [requireScope('admin')] as const,
  request: { params: clientParam, body: jsonBody(z.object({ policy: z.record(z.string(), z.unknown()) })) },
  responses: { 200: jsonResponse(liveClientSchema, 'The client'), ...errorResponses },
})

const resetClient = createRoute({
  method: 'post',
  path: '/v1/guard/clients/{client_id}/reset',
  tags: ['guard'],
  summary: "Clears a client's signals, risk and action (its limits and today's usage stay)",
  security: bearerSecurity,
  middleware: [requireScope('admin')] as const,
  request: { params: clientParam },
  responses: { 200: jsonResponse(liveClientSchema, 'The client after the reset'), ...errorResponses },
})

const listEvents = createRoute({
  method: 'get',
  path: '/v1/guard/events',
  tags: ['guard'],
  summary: 'Detections and actions taken (escalations and resets), newest first',
  security: bearerSecurity,
  middleware: [requireScope('admin')] as const,
  request: { query: listQuerySchema.extend({ client_id: z.string().max(200).optional().openapi({ param: { name: 'client_id', in: 'query' } }) }) },
  responses: { 200: jsonResponse(listSchema(eventSchema), 'Events'), ...errorResponses },
})

async function liveView(env: Env, client: ClientIdentity) {
  const stub = guardStub(env, client)
  const [view, policy] = await Promise.all([stub.view(), stub.keyPolicy()])
  return {
    object: 'guard.client' as const,
    id: view.client_id || (client.endUser === null ? client.keyId : `${client.keyId}~${client.endUser}`),
    key_id: client.keyId,
    end_user: client.endUser,
    risk: view.risk,
    action: view.action,
    signals: view.signals,
    state_bytes: view.state_bytes,
    updated_at: unixSeconds(Date.now()),
    action_since: view.action_since === null ? null : unixSeconds(view.action_since),
    in_flight: view.in_flight,
    policy: policy as Record<string, unknown>,
  }
}

export function guardRoutes() {
  return createRouter()
    .openapi(listClients, async (c) => {
      const { limit, after, action } = c.req.valid('query')
      const tenantId = c.get('auth').tenantId
      // Highest risk first; the cursor is the position (risk, client id) of
      // the client named by `after`.
      const db = database(c.env)
      const [cursor] = after ? await db.select().from(guardClients).where(and(eq(guardClients.tenantId, tenantId), eq(guardClients.clientId, after))) : []
      const rows = await db
        .select()
        .from(guardClients)
        .where(
          and(
            eq(guardClients.tenantId, tenantId),
            action ? eq(guardClients.action, action) : undefined,
            cursor ? or(lt(guardClients.risk, cursor.risk), and(eq(guardClients.risk, cursor.risk), gt(guardClients.clientId, cursor.clientId))) : undefined,
          ),
        )
        .orderBy(desc(guardClients.risk), asc(guardClients.clientId))
        .limit(limit + 1)
      return c.json(toList(rows, limit, clientView), 200)
    })
    .openapi(getClient, async (c) => {
      const client = await findGuardClient(c.env, c.get('auth').tenantId, c.req.valid('param').client_id)
      return c.json(await liveView(c.env, client), 200)
    })
    .openapi(putPolicy, async (c) => {
      const client = await findGuardClient(c.env, c.get('auth').tenantId, c.req.valid('param').client_id)
      const { policy } = c.req.valid('json')
      const parsed = guardPolicySchema.safeParse(policy)
      if (!parsed.success) {
        const issue = parsed.error.issues[0]
        throw new ApiError(400, `Invalid guard policy: ${issue?.message ?? 'invalid'}`, { code: 'invalid_policy', param: ['policy', ...(issue?.path ?? [])].join('.') })
      }
      // What the tenant wrote is kept, not the defaults filled in, so that a
      // field it leaves out still comes from the model's or route's policy.
      await guardStub(c.env, client).setPolicy(client, policy)
      return c.json(await liveView(c.env, client), 200)
    })
    .openapi(resetClient, async (c) => {
      const client = await findGuardClient(c.env, c.get('auth').tenantId, c.req.valid('param').client_id)
      await guardStub(c.env, client).reset(client)
      return c.json(await liveView(c.env, client), 200)
    })
    .openapi(listEvents, async (c) => {
      const { limit, after, client_id } = c.req.valid('query')
      const rows = await database(c.env)
        .select()
        .from(guardEvents)
        .where(
          and(
            eq(guardEvents.tenantId, c.get('auth').tenantId),
            client_id ? eq(guardEvents.clientId, client_id) : undefined,
            after ? lt(guardEvents.id, after) : undefined,
          ),
        )
        .orderBy(desc(guardEvents.id))
        .limit(limit + 1)
      return c.json(toList(rows, limit, eventView), 200)
    })
}

