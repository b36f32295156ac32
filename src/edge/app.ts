import { OpenAPIHono } from '@hono/zod-openapi'
import { bodyLimit } from 'hono/body-limit'
import type { AppEnv } from './env.ts'
import { ApiError } from './errors.ts'
import { requireKey } from './middleware/auth.ts'
import { handleError, handleNotFound, validationHook } from './middleware/error-envelope.ts'
import { meterRequests } from './middleware/meter-requests.ts'
import { requestId } from './middleware/request-id.ts'
import { adminTenantRoutes } from './routes/admin-tenants.ts'
import { healthRoutes } from './routes/health.ts'
import { internalRoutes } from './routes/internal.ts'
import { jobRoutes } from './routes/jobs.ts'
import { keyRoutes } from './routes/keys.ts'
import { modelFileRoutes } from './routes/model-files.ts'
import { modelRoutes } from './routes/models.ts'
import { uploadRoutes } from './routes/uploads.ts'
import { usageRoutes } from './routes/usage.ts'
import { webhookRoutes } from './routes/webhooks.ts'
import { billingSinkRoutes } from './routes/billing-sinks.ts'
import { readSettings } from './settings.ts'

// JSON bodies (POST, PATCH) are capped by MOAT_MAX_JSON_BYTES; PUT carries
// file bytes, which the artifact routes stream and cap themselves.
function limitJsonBodies() {
  return async (c: Parameters<ReturnType<typeof bodyLimit>>[0], next: () => Promise<void>) => {
    if (c.req.method !== 'POST' && c.req.method !== 'PATCH') return next()
    const maxSize = readSettings(c.env).maxJsonBytes
    return bodyLimit({
      maxSize,
      onError: () => {
        throw new ApiError(413, `Request body exceeds ${maxSize} bytes`, { code: 'request_too_large' })
      },
    })(c, next)
  }
}

export function createApp() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  app.use('*', requestId())
  app.use('*', limitJsonBodies())
  app.onError(handleError)
  app.notFound(handleNotFound)

  app.use('/v1/*', requireKey())
  app.use('/v1/*', meterRequests())

  app.route('/', healthRoutes())
  app.route('/', adminTenantRoutes())
  app.route('/', keyRoutes())
  app.route('/', modelRoutes())
  app.route('/', modelFileRoutes())
  app.route('/', uploadRoutes())
  app.route('/', jobRoutes())
  app.route('/', usageRoutes())
  app.route('/', webhookRoutes())
  app.route('/', billingSinkRoutes())
  app.route('/', internalRoutes())

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' })
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Moat', version: '0.1.0', description: 'An edge gateway that protects machine-learning models.' },
  })
  return app
}
