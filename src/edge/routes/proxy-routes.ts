import { createRoute, z } from '@hono/zod-openapi'
import { and, desc, eq, isNull, lt } from 'drizzle-orm'
import { database } from '../db/client.ts'
import { proxyRoutes } from '../db/schema.ts'
import { ApiError } from '../errors.ts'
import { requireScope } from '../middleware/auth.ts'
import { idempotency } from '../middleware/idempotency.ts'
import { routeBodySchema, routePolicySchema, routeUpdateSchema, strategySchema } from '../proxy/route-config.ts'
import { createRoute as storeRoute, findRoute, routeView, sealTargets } from '../proxy/route-store.ts'
import { bearerSecurity, conflictResponse, errorResponses, idParam, jsonBody, jsonResponse, listQuerySchema, listSchema, toList } from './api-schemas.ts'
import { createRouter } from './router.ts'

const routeSchema = z
  .object({
    id: z.string(),
    object: z.literal('route'),
    name: z.string(),
    kind: z.string(),
    targets: z.array(z.object({ url: z.string(), weight: z.number(), headers: z.array(z.string()) })),
    strategy: z.record(z.string(), z.unknown()),
    probabilities_path: z.string().nullable(),
    policy: z.record(z.string(), z.unknown()).nullable(),
    created_at: z.number().int(),
    updated_at: z.number().int(),
  })
  .openapi('Route')

const common = { tags: ['routes'], security: bearerSecurity }
const routeParams = z.object({ id: idParam('id') })

const create = createRoute({
  method: 'post',
  path: '/v1/routes',
  ...common,
  summary: 'Put a model owner’s endpoint behind Moat; headers are stored sealed and never returned',
  middleware: [requireScope('admin'), idempotency()] as const,
  request: { body: jsonBody(routeBodySchema) },
  responses: { 201: jsonResponse(routeSchema, 'The route'), ...errorResponses, ...conflictResponse },
})

const list = createRoute({
  method: 'get',
  path: '/v1/routes',
  ...common,
  middleware: [requireScope('admin')] as const,
  request: { query: listQuerySchema },
  responses: { 200: jsonResponse(listSchema(routeSchema), 'Routes, newest first'), ...errorResponses },
})

const get = createRoute({
  method: 'get',
  path: '/v1/routes/{id}',
  ...common,
  middleware: [requireScope('admin')] as const,
  request: { params: routeParams },
  responses: { 200: jsonResponse(routeSchema, 'The route'), ...errorResponses },
})

const update = createRoute({
  method: 'patch',
  path: '/v1/routes/{id}',
  ...common,
  middleware: [requireScope('admin')] as const,
  request: { params: routeParams, body: jsonBody(routeUpdateSchema) },
  responses: { 200: jsonResponse(routeSchema, 'The route'), ...errorResponses, ...conflictResponse },
})

const remove = createRoute({
  method: 'delete',
  path: '/v1/routes/{id}',
  ...common,
  middleware: [requireScope('admin')] as const,
  request: { params: routeParams },
  responses: { 200: jsonResponse(z.object({ id: z.string(), deleted: z.literal(true) }), 'Deleted'), ...errorResponses },
})

export function proxyRouteRoutes() {
  return createRouter()
    .openapi(create, async (c) => c.json(routeView(await storeRoute(c.env, database(c.env), c.get('auth').tenantId, c.req.valid('json'))), 201))
    .openapi(list, async (c) => {
      const { limit, after } = c.req.valid('query')
      const rows = await database(c.env)
        .select()
        .from(proxyRoutes)
        .where(and(eq(proxyRoutes.tenantId, c.get('auth').tenantId), isNull(proxyRoutes.deletedAt), after ? lt(proxyRoutes.id, after) : undefined))
        .orderBy(desc(proxyRoutes.id))
        .limit(limit + 1)
      return c.json(toList(rows, limit, routeView), 200)
    })
    .openapi(get, async (c) => c.json(routeView(await findRoute(database(c.env), c.get('auth').tenantId, { id: c.req.valid('param').id })), 200))
    .openapi(update, async (c) => {
      const db = database(c.env)
      const route = await findRoute(db, c.get('auth').tenantId, { id: c.req.valid('param').id })
      const body = c.req.valid('json')
      if (body.name && body.name !== route.name) {
        const [taken] = await db
          .select({ id: proxyRoutes.id })
          .from(proxyRoutes)
          .where(and(eq(proxyRoutes.tenantId, route.tenantId), eq(proxyRoutes.name, body.name), isNull(proxyRoutes.deletedAt)))
        if (taken) throw new ApiError(409, `A route named '${body.name}' already exists`, { code: 'route_exists', param: 'name' })
      }
      const targets = body.upstream_url || body.targets ? await sealTargets(c.env, route.id, body) : route.targets
      const [updated] = await db
        .update(proxyRoutes)
        .set({
          name: body.name ?? route.name,
          targets,
          strategy: body.strategy ? strategySchema.parse(body.strategy) : route.strategy,
          probabilitiesPath: body.probabilities_path ?? route.probabilitiesPath,
          policy: body.policy ? routePolicySchema.parse(body.policy) : route.policy,
          updatedAt: Date.now(),
        })
        .where(eq(proxyRoutes.id, route.id))
        .returning()
      return c.json(routeView(updated!), 200)
    })
    .openapi(remove, async (c) => {
      const db = database(c.env)
      const route = await findRoute(db, c.get('auth').tenantId, { id: c.req.valid('param').id })
      await db.update(proxyRoutes).set({ deletedAt: Date.now() }).where(eq(proxyRoutes.id, route.id)).run()
      return c.json({ id: route.id, deleted: true as const }, 200)
    })
}
