import { createRoute, z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { MergeConfigError, parseMergeConfig, validateMergeConfig, type MergeConfig } from '../../shared/merge-config.ts'
import { versionNameSchema } from '../artifacts/artifact-names.ts'
import type { AppEnv } from '../env.ts'
import { ApiError } from '../errors.ts'
import { enqueueJob } from '../jobs/create-job.ts'
import { jobView } from '../jobs/job-view.ts'
import { mergeParams } from '../jobs/merge-params.ts'
import { requireScope } from '../middleware/auth.ts'
import { idempotency } from '../middleware/idempotency.ts'
import { meterUsage } from '../usage/meter-usage.ts'
import { bearerSecurity, conflictResponse, errorResponses, jsonResponse } from './api-schemas.ts'
import { jobSchema } from './jobs.ts'
import { createRouter } from './router.ts'

// POST /v1/merges: a mergekit config (YAML, or the same structure as JSON)
// whose models are registered model ids (`<id>` or `<id>/<version>`) becomes
// a `merge` job. The output is registered as a version of `output_model`
// (default: the base model's, else the first model's) when the job succeeds.

const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml']

const mergeQuerySchema = z.object({
  output_model: z.string().min(1).max(64).optional().openapi({ param: { name: 'output_model', in: 'query' } }),
  output_version: versionNameSchema.optional().openapi({ param: { name: 'output_version', in: 'query' } }),
  seed: z.coerce.number().int().min(0).max(0xffffffff).default(0).openapi({ param: { name: 'seed', in: 'query' } }),
  refuse_non_finite: z.enum(['true', 'false']).default('false').openapi({ param: { name: 'refuse_non_finite', in: 'query' } }),
})

const create = createRoute({
  method: 'post',
  path: '/v1/merges',
  tags: ['jobs'],
  summary: 'Queue a merge of registered models, described by a mergekit config',
  security: bearerSecurity,
  middleware: [requireScope('jobs:write'), idempotency()] as const,
  request: {
    query: mergeQuerySchema,
    body: {
      required: true,
      description: "A mergekit configuration. Model references are registered model ids, optionally '/<version>'.",
      content: {
        'application/yaml': { schema: z.string() },
        'application/json': { schema: z.record(z.string(), z.unknown()) },
      },
    },
  },
  responses: { 202: jsonResponse(jobSchema, 'The queued merge job'), ...errorResponses, ...conflictResponse },
})

async function readConfig(c: Context<AppEnv>): Promise<MergeConfig> {
  const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase()
  try {
    if (type === 'application/json') {
      let body: unknown
      try {
        body = await c.req.json()
      } catch {
        throw new ApiError(400, 'Malformed JSON body', { code: 'invalid_json' })
      }
      return validateMergeConfig(body)
    }
    if (YAML_TYPES.includes(type)) return parseMergeConfig(await c.req.text())
  } catch (error) {
    if (error instanceof MergeConfigError) {
      throw new ApiError(400, `Invalid merge config: ${error.message}`, { code: 'invalid_merge_config', param: error.issues[0]?.path ?? '' })
    }
    throw error
  }
  throw new ApiError(415, `Send the config as application/yaml or application/json, not '${type}'`, { code: 'unsupported_media_type' })
}

export function mergeRoutes() {
  return createRouter().openapi(create, async (c) => {
    const query = c.req.valid('query')
    const config = await readConfig(c)
    const auth = c.get('auth')
    const params = await mergeParams(c.env, auth.tenantId, config, {
      outputModel: query.output_model,
      outputVersion: query.output_version,
      seed: query.seed,
      refuseNonFinite: query.refuse_non_finite === 'true',
    })
    const row = await enqueueJob(c.env, auth, { type: 'merge', params, requestId: c.get('requestId') })
    await meterUsage(c, 'jobs.created', 1)
    return c.json(jobView(row), 202)
  })
}
