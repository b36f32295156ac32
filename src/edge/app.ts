import { OpenAPIHono } from '@hono/zod-openapi'
import { bodyLimit } from 'hono/body-limit'
import type { AppEnv } from './env.ts'
import { ApiError } from './errors.ts'
import { requireKey } from './middleware/auth.ts'
import { handleError, handleNotFound, validationHook } from './middleware/error-envelope.ts'
import { enforceQuota } from './middleware/enforce-quota.ts'
import { meterRequests } from './middleware/meter-requests.ts'
import { observeRequests } from './middleware/observe-requests.ts'
import { collectRequestUsage } from './usage/request-usage.ts'
import { requestId } from './middleware/request-id.ts'
import { adminTenantRoutes } from './routes/admin-tenants.ts'
import { guardRoutes } from './routes/guard.ts'
import { healthRoutes } from './routes/health.ts'
import { internalRoutes } from './routes/internal.ts'
import { jobRoutes } from './routes/jobs.ts'
import { keyRoutes } from './routes/keys.ts'
import { lineageRoutes } from './routes/lineage.ts'
import { mergeRoutes } from './routes/merges.ts'
import { modelFileRoutes } from './routes/model-files.ts'
import { modelRoutes } from './routes/models.ts'
import { ownershipRoutes } from './routes/ownership.ts'
import { predictRoutes } from './routes/predict.ts'
import { chatCompletionRoutes } from './routes/chat-completions.ts'
import { proxyPassthroughRoutes } from './routes/proxy-passthrough.ts'
import { proxyRouteRoutes } from './routes/proxy-routes.ts'
import { moderationEventRoutes } from './routes/moderation-events.ts'
import { moderationPolicyRoutes } from './routes/moderation-policies.ts'
import { moderationRoutes } from './routes/moderations.ts'
import { uploadRoutes } from './routes/uploads.ts'
import { usageRoutes } from './routes/usage.ts'
import { watermarkDetectRoutes } from './routes/watermark-detect.ts'
import { webhookRoutes } from './routes/webhooks.ts'
import { billingSinkRoutes } from './routes/billing-sinks.ts'
import { dashboardRoutes } from './routes/dashboard.tsx'
import { readSettings } from './settings.ts'

// JSON bodies are capped by MOAT_MAX_JSON_BYTES; a PUT of file bytes (not
// JSON) is streamed and capped by the artifact routes themselves.
function limitJsonBodies() {
  return async (c: Parameters<ReturnType<typeof bodyLimit>>[0], next: () => Promise<void>) => {
    const method = c.req.method
    const json = (c.req.header('content-type') ?? '').includes('json')
    if (method !== 'POST' && method !== 'PATCH' && !(method === 'PUT' && json)) return next()
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

  for (const path of ['/v1/*', '/v2/*']) {
    app.use(path, collectRequestUsage())
    app.use(path, observeRequests())
    app.use(path, requireKey())
    app.use(path, meterRequests())
    app.use(path, enforceQuota())
  }

  app.route('/', healthRoutes())
  app.route('/', adminTenantRoutes())
  app.route('/', keyRoutes())
  app.route('/', modelRoutes())
  app.route('/', modelFileRoutes())
  app.route('/', predictRoutes())
  app.route('/', proxyRouteRoutes())
  app.route('/', chatCompletionRoutes())
  app.route('/', proxyPassthroughRoutes())
  app.route('/', moderationEventRoutes())
  app.route('/', uploadRoutes())
  app.route('/', jobRoutes())
  app.route('/', mergeRoutes())
  app.route('/', lineageRoutes())
  app.route('/', moderationRoutes())
  app.route('/', moderationPolicyRoutes())
  app.route('/', usageRoutes())
  app.route('/', webhookRoutes())
  app.route('/', billingSinkRoutes())
  app.route('/', guardRoutes())
  app.route('/', ownershipRoutes())
  app.route('/', watermarkDetectRoutes())
  app.route('/', internalRoutes())
  app.route('/', dashboardRoutes())

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' })
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Moat', version: '0.1.0', description: 'An edge gateway that protects machine-learning models.' },
  })
  return app
}
