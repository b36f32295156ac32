import { and, eq, isNull } from 'drizzle-orm'
import { createId } from '../../shared/ids.ts'
import { checkOutboundUrl } from '../../shared/outbound-url.ts'
import type { Database } from '../db/client.ts'
import { proxyRoutes } from '../db/schema.ts'
import type { Env } from '../env.ts'
import { ApiError, notFound } from '../errors.ts'
import { secretBox } from '../secrets.ts'
import { readSettings } from '../settings.ts'
import { unixSeconds } from '../unix-seconds.ts'
import { routePolicySchema, strategySchema, type RouteBody, type RoutePolicy } from './route-config.ts'

export type RouteRow = typeof proxyRoutes.$inferSelect
export type RouteTarget = RouteRow['targets'][number]

export function routeView(row: RouteRow) {
  return {
    id: row.id,
    object: 'route' as const,
    name: row.name,
    kind: row.kind,
    targets: row.targets.map((target) => ({ url: target.url, weight: target.weight, headers: target.headerNames })),
    strategy: row.strategy,
    probabilities_path: row.probabilitiesPath,
    policy: row.policy,
    created_at: unixSeconds(row.createdAt),
    updated_at: unixSeconds(row.updatedAt),
  }
}

// Every target URL passes the outbound checks; headers are sealed per target.
export async function sealTargets(env: Env, routeId: string, body: Pick<RouteBody, 'upstream_url' | 'headers' | 'targets'>): Promise<RouteTarget[]> {
  const targets = body.targets ?? (body.upstream_url ? [{ url: body.upstream_url, headers: body.headers, weight: 1 }] : [])
  if (targets.length === 0) throw new ApiError(400, "A route needs 'upstream_url' or 'targets'", { code: 'invalid_value', param: 'upstream_url' })
  if (body.targets && body.upstream_url) throw new ApiError(400, "Give 'upstream_url' or 'targets', not both", { code: 'invalid_value', param: 'targets' })
  const policy = readSettings(env).outbound
  const box = await secretBox(env)
  return Promise.all(
    targets.map(async (target, index) => {
      const check = checkOutboundUrl(target.url, policy)
      const param = body.targets ? `targets.${index}.url` : 'upstream_url'
      if (!check.ok) throw new ApiError(400, `Upstream URL refused: ${check.reason}`, { code: 'url_not_allowed', param })
      const headers = target.headers ?? {}
      const names = Object.keys(headers)
      return {
        url: check.url.toString(),
        weight: target.weight ?? 1,
        headerNames: names,
        sealedHeaders: names.length > 0 ? await box.seal(JSON.stringify(headers), `route:${routeId}:${index}`) : null,
      }
    }),
  )
}

// Opened headers by sealed value: a sealed value never changes meaning, so an
// isolate opens each once instead of on every proxied call.
const opened = new Map<string, Promise<Record<string, string>>>()

export function openTargetHeaders(env: Env, routeId: string, target: RouteTarget, index: number): Promise<Record<string, string>> {
  const sealed = target.sealedHeaders
  if (!sealed) return Promise.resolve({})
  const hit = opened.get(sealed)
  if (hit) return hit
  const headers = secretBox(env).then(async (box) => JSON.parse(await box.open(sealed, `route:${routeId}:${index}`)) as Record<string, string>)
  if (opened.size >= 1000) opened.clear()
  opened.set(sealed, headers)
  headers.catch(() => opened.delete(sealed))
  return headers
}

export async function createRoute(env: Env, db: Database, tenantId: string, body: RouteBody): Promise<RouteRow> {
  if (body.kind === 'json-classifier' && !body.probabilities_path) {
    throw new ApiError(400, 'A json-classifier route needs probabilities_path', { code: 'invalid_value', param: 'probabilities_path' })
  }
  const [existing] = await db.select({ id: proxyRoutes.id }).from(proxyRoutes).where(and(eq(proxyRoutes.tenantId, tenantId), eq(proxyRoutes.name, body.name), isNull(proxyRoutes.deletedAt)))
  if (existing) throw new ApiError(409, `A route named '${body.name}' already exists`, { code: 'route_exists', param: 'name' })
  const id = createId('route')
  const now = Date.now()
  const [row] = await db
    .insert(proxyRoutes)
    .values({
      id,
      tenantId,
      name: body.name,
      kind: body.kind,
      targets: await sealTargets(env, id, body),
      strategy: strategySchema.parse(body.strategy ?? {}),
      probabilitiesPath: body.probabilities_path ?? null,
      policy: routePolicySchema.parse(body.policy ?? {}),
      createdAt: now,
      updatedAt: now,
    })
    .returning()
  return row!
}

// The proxy's lookup by name, kept 2 s per isolate: a route edited or deleted
// reaches every isolate within that time. Management reads go to D1.
const ROUTE_TTL_MS = 2000
const byName = new Map<string, { at: number; route: Promise<RouteRow> }>()

export function findRouteForProxy(db: Database, tenantId: string, name: string): Promise<RouteRow> {
  const key = `${tenantId}\n${name}`
  const now = Date.now()
  const hit = byName.get(key)
  if (hit && now - hit.at < ROUTE_TTL_MS) return hit.route
  const route = findRoute(db, tenantId, { name })
  if (byName.size >= 1000) byName.clear()
  byName.set(key, { at: now, route })
  route.catch(() => byName.delete(key))
  return route
}

// A route's policy as the proxy applies it, parsed once per cached row rather
// than on every call.
const parsedPolicies = new WeakMap<RouteRow, RoutePolicy>()

export function routePolicyOf(route: RouteRow): RoutePolicy {
  let policy = parsedPolicies.get(route)
  if (!policy) {
    policy = routePolicySchema.parse(route.policy ?? {})
    parsedPolicies.set(route, policy)
  }
  return policy
}

export async function findRoute(db: Database, tenantId: string, by: { id?: string; name?: string }): Promise<RouteRow> {
  const [row] = await db
    .select()
    .from(proxyRoutes)
    .where(and(eq(proxyRoutes.tenantId, tenantId), isNull(proxyRoutes.deletedAt), by.id ? eq(proxyRoutes.id, by.id) : eq(proxyRoutes.name, by.name ?? '')))
  if (!row) throw notFound('route', by.id ? 'id' : 'model')
  return row
}
