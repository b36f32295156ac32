import { createRoute, z } from '@hono/zod-openapi'
import type { MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { OMNI_CATEGORIES } from '../../shared/moderation/categories.ts'
import { MODERATION_ACTIONS, moderationPolicySchema, resolvePolicy, type ModerationPolicy } from '../../shared/moderation/policy.ts'
import type { AppEnv } from '../env.ts'
import { ApiError } from '../errors.ts'
import { readSettings } from '../settings.ts'
import { unixSeconds } from '../unix-seconds.ts'
import { requireScope } from '../middleware/auth.ts'
import { deleteModerationPolicy, readModerationPolicy, writeModerationPolicy } from '../moderation/policy-store.ts'
import { bearerSecurity, errorResponses, jsonBody, jsonResponse } from './api-schemas.ts'
import { createRouter } from './router.ts'

const resolvedSchema = z.object({
  input: z.boolean(),
  output: z.boolean(),
  mode: z.enum(['enforce', 'observe']),
  categories: z.record(z.enum(OMNI_CATEGORIES), z.object({ threshold: z.number(), action: z.enum(MODERATION_ACTIONS) })),
  blocklist: z.array(z.string()),
  allowlist: z.array(z.string()),
})

const policyViewSchema = z
  .object({
    object: z.literal('policy.moderation'),
    // `tenant` when the tenant has written one, `default` otherwise.
    source: z.enum(['tenant', 'default']),
    // What the tenant wrote, as written.
    policy: z.record(z.string(), z.unknown()),
    // What applies: every category, defaults filled in.
    effective: resolvedSchema,
    updated_at: z.number().int().nullable(),
  })
  .openapi('ModerationPolicy')

function view(policy: ModerationPolicy | null, updatedAt: number | null) {
  return {
    object: 'policy.moderation' as const,
    source: policy ? ('tenant' as const) : ('default' as const),
    policy: policy ?? {},
    effective: resolvePolicy(policy ?? {}),
    updated_at: updatedAt === null ? null : unixSeconds(updatedAt),
  }
}

const path = '/v1/policies/moderation'

// The app caps POST and PATCH bodies; this PUT carries JSON too.
const limitJson: MiddlewareHandler<AppEnv> = (c, next) => {
  const maxSize = readSettings(c.env).maxJsonBytes
  return bodyLimit({
    maxSize,
    onError: () => {
      throw new ApiError(413, `Request body exceeds ${maxSize} bytes`, { code: 'request_too_large' })
    },
  })(c, next)
}

const get = createRoute({
  method: 'get',
  path,
  tags: ['moderation'],
  summary: "The tenant's moderation policy and the policy in effect",
  security: bearerSecurity,
  middleware: [requireScope('moderation')] as const,
  responses: { 200: jsonResponse(policyViewSchema, 'The policy'), ...errorResponses },
})

const put = createRoute({
  method: 'put',
  path,
  tags: ['moderation'],
  summary: 'Replace the moderation policy; categories it does not name keep their defaults',
  security: bearerSecurity,
  middleware: [requireScope('admin'), limitJson] as const,
  request: { body: jsonBody(moderationPolicySchema) },
  responses: { 200: jsonResponse(policyViewSchema, 'The stored policy'), ...errorResponses },
})

const remove = createRoute({
  method: 'delete',
  path,
  tags: ['moderation'],
  summary: 'Go back to the default policy',
  security: bearerSecurity,
  middleware: [requireScope('admin')] as const,
  responses: { 200: jsonResponse(policyViewSchema, 'The default policy'), ...errorResponses },
})

export function moderationPolicyRoutes() {
  return createRouter()
    .openapi(get, async (c) => {
      const stored = await readModerationPolicy(c.env, c.get('auth').tenantId)
      return c.json(view(stored?.policy ?? null, stored?.updatedAt ?? null), 200)
    })
    .openapi(put, async (c) => {
      const policy = c.req.valid('json')
      const updatedAt = await writeModerationPolicy(c.env, c.get('auth').tenantId, policy)
      return c.json(view(policy, updatedAt), 200)
    })
    .openapi(remove, async (c) => {
      await deleteModerationPolicy(c.env, c.get('auth').tenantId)
      return c.json(view(null, null), 200)
    })
}
