import { createRoute, z } from '@hono/zod-openapi'
import { OMNI_CATEGORIES, TEXT_CATEGORIES, type Category } from '../../shared/moderation/categories.ts'
import { compileLists, decide } from '../../shared/moderation/decide.ts'
import { resolvePolicy } from '../../shared/moderation/policy.ts'
import { randomString } from '../../shared/ids.ts'
import { ApiError } from '../errors.ts'
import { requireScope } from '../middleware/auth.ts'
import { moderationEngine } from '../moderation/engine-instance.ts'
import { readModerationPolicy } from '../moderation/policy-store.ts'
import { requireUtf8Body } from '../moderation/require-utf8-body.ts'
import { meterUsage } from '../usage/meter-usage.ts'
import { bearerSecurity, errorResponses, jsonBody, jsonResponse, tooLargeResponse } from './api-schemas.ts'
import { createRouter } from './router.ts'

export const MAX_INPUTS = 32
export const MAX_INPUT_CHARS = 32_000

// Model names OpenAI clients send; each family answers its own categories.
const OMNI_MODELS = ['omni-moderation-latest', 'omni-moderation-2024-09-26']
const TEXT_MODELS = ['text-moderation-latest', 'text-moderation-stable', 'text-moderation-007']

const textItem = z.strictObject({ type: z.literal('text'), text: z.string() })
const imageItem = z.strictObject({ type: z.literal('image_url'), image_url: z.object({ url: z.string() }) })

const requestSchema = z
  .strictObject({
    input: z.union([z.string(), z.array(z.string()), z.array(z.union([textItem, imageItem]))]),
    model: z.enum([...OMNI_MODELS, ...TEXT_MODELS]).default('omni-moderation-latest'),
  })
  .openapi('ModerationRequest')

const flags = z.record(z.string(), z.boolean())
const resultSchema = z.object({
  flagged: z.boolean(),
  categories: flags,
  category_scores: z.record(z.string(), z.number()),
  category_applied_input_types: z.record(z.string(), z.array(z.literal('text'))),
  moat: z.record(z.string(), z.unknown()).openapi({ description: "Moat's extras: action, matches, PII, prompt injection, language, lists" }),
})
const responseSchema = z.object({ id: z.string(), model: z.string(), results: z.array(resultSchema) }).openapi('ModerationResponse')

const moderate = createRoute({
  method: 'post',
  path: '/v1/moderations',
  tags: ['moderation'],
  summary: "OpenAI's moderation endpoint, answered in-process at the edge under the tenant's policy",
  security: bearerSecurity,
  middleware: [requireScope('moderation'), requireUtf8Body()] as const,
  request: { body: jsonBody(requestSchema) },
  responses: { 200: jsonResponse(responseSchema, 'One result per input'), ...errorResponses, ...tooLargeResponse },
})

type Input = z.infer<typeof requestSchema>['input']

// Lone surrogates survive JSON.parse ("\ud800") but are not text.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

function textsOf(input: Input): string[] {
  const items = typeof input === 'string' ? [input] : input
  if (items.length === 0) throw new ApiError(400, "'input' must hold at least one text", { code: 'invalid_value', param: 'input' })
  if (items.length > MAX_INPUTS) {
    throw new ApiError(400, `'input' holds ${items.length} inputs; at most ${MAX_INPUTS} are allowed per request`, { code: 'too_many_inputs', param: 'input' })
  }
  return items.map((item, i) => {
    const param = typeof input === 'string' ? 'input' : `input.${i}`
    if (typeof item !== 'string' && item.type === 'image_url') {
      throw new ApiError(400, 'Image inputs are not supported yet: send text items only', { code: 'image_input_not_supported', param })
    }
    const text = typeof item === 'string' ? item : item.text
    if (text.length > MAX_INPUT_CHARS) {
      throw new ApiError(400, `'${param}' is ${text.length} characters long; at most ${MAX_INPUT_CHARS} are allowed`, { code: 'input_too_long', param })
    }
    if (LONE_SURROGATE.test(text)) throw new ApiError(400, `'${param}' is not valid Unicode text`, { code: 'invalid_utf8', param })
    return text
  })
}

export function moderationRoutes() {
  return createRouter().openapi(moderate, async (c) => {
    const { input, model } = c.req.valid('json')
    const texts = textsOf(input)
    const categories: readonly Category[] = TEXT_MODELS.includes(model) ? TEXT_CATEGORIES : OMNI_CATEGORIES
    const stored = await readModerationPolicy(c.env, c.get('auth').tenantId)
    const policy = resolvePolicy(stored?.policy)
    const lists = compileLists(policy)
    const engine = await moderationEngine()
    const injectionThreshold = engine.model.thresholds.injection
    const results = texts.map((text) => decide(text, engine.analyze(text, lists), policy, { categories, injectionThreshold }))

    await meterUsage(c, 'moderation.inputs', texts.length)
    await meterUsage(c, 'moderation.chars', texts.reduce((sum, text) => sum + text.length, 0))
    return c.json(
      {
        id: `modr-${randomString(24)}`,
        model,
        results: results.map((result) => ({ ...result, moat: { ...result.moat, policy: stored ? 'tenant' : 'default', engine: engine.version } })),
      },
      200,
    )
  })
}
