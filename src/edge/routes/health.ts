import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi'
import type { AppEnv } from '../env.ts'
import { jsonResponse } from './api-schemas.ts'

const healthSchema = z.object({ status: z.enum(['ok', 'degraded']), database: z.enum(['ok', 'unavailable']) }).openapi('Health')

const health = createRoute({
  method: 'get',
  path: '/healthz',
  tags: ['operator'],
  responses: { 200: jsonResponse(healthSchema, 'The edge is up'), 503: jsonResponse(healthSchema, 'The database is unreachable') },
})

export function healthRoutes() {
  const app = new OpenAPIHono<AppEnv>()
  return app.openapi(health, async (c) => {
    const database = await c.env.DB.prepare('SELECT 1')
      .first()
      .then(() => 'ok' as const)
      .catch(() => 'unavailable' as const)
    if (database === 'ok') return c.json({ status: 'ok' as const, database }, 200)
    return c.json({ status: 'degraded' as const, database }, 503)
  })
}
