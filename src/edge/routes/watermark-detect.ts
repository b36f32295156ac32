import { createRoute, z } from '@hono/zod-openapi'
import { and, eq } from 'drizzle-orm'
import { GREEN_LIST_SCHEMES, scoreGreenList } from '../../shared/guard/green-list.ts'
import { loadTokenizer, TokenizerError, type TextTokenizer } from '../../shared/guard/text-tokenizer.ts'
import { versionNameSchema } from '../artifacts/artifact-names.ts'
import { database } from '../db/client.ts'
import { modelFiles } from '../db/schema.ts'
import type { Env } from '../env.ts'
import { ApiError } from '../errors.ts'
import { requireScope } from '../middleware/auth.ts'
import { findModel, findVersion } from '../models/model-store.ts'
import { bearerSecurity, errorResponses, jsonBody, jsonResponse } from './api-schemas.ts'
import { createRouter } from './router.ts'

// Green-list watermark detection for model owners who watermark their own
// LLM's sampling (see src/shared/guard/green-list.ts for the exact scheme).
// The tokenizer is the `tokenizer.json` file of one of the owner's model
// versions, uploaded like any model file.

const MAX_TEXT_CHARS = 200_000
const MAX_TOKENIZER_BYTES = 32 * 1024 * 1024

const detectBody = z.strictObject({
  text: z.string().min(1).max(MAX_TEXT_CHARS),
  tokenizer: z.strictObject({ model: z.string().min(1).max(64), version: versionNameSchema }),
  key: z.string().min(1).max(1024),
  gamma: z.number().gt(0).lt(1).default(0.25),
  scheme: z.enum(GREEN_LIST_SCHEMES).default('lefthash-hmac'),
  context_width: z.number().int().min(1).max(8).default(1),
  ignore_repeated_ngrams: z.boolean().default(true),
  z_threshold: z.number().positive().max(40).default(4),
})

const detectionSchema = z
  .object({
    object: z.literal('watermark.detection'),
    scheme: z.enum(GREEN_LIST_SCHEMES),
    gamma: z.number(),
    context_width: z.number().int(),
    z_threshold: z.number(),
    tokens: z.number().int(),
    tokens_scored: z.number().int(),
    green_tokens: z.number().int(),
    green_fraction: z.number(),
    z_score: z.number(),
    p_value: z.number(),
    min_tokens: z.number().int(),
    verdict: z.enum(['watermarked', 'not_watermarked', 'too_short']),
  })
  .openapi('WatermarkDetection')

const detect = createRoute({
  method: 'post',
  path: '/v1/watermark/detect',
  tags: ['guard'],
  summary: 'Green-list watermark detection (Kirchenbauer et al.): green-token count, z-score, p-value and verdict',
  security: bearerSecurity,
  middleware: [requireScope('models:read')] as const,
  request: { body: jsonBody(detectBody) },
  responses: { 200: jsonResponse(detectionSchema, 'The detection'), 422: errorResponses[400], ...errorResponses },
})

// Parsed tokenizers, by their content-addressed artifact key: files are
// immutable, so a cached one never goes stale.
const tokenizers = new Map<string, TextTokenizer>()

async function tokenizerOf(env: Env, tenantId: string, reference: { model: string; version: string }): Promise<TextTokenizer> {
  const db = database(env)
  const model = await findModel(db, tenantId, reference.model)
  const version = await findVersion(db, model, reference.version)
  const [file] = await db.select().from(modelFiles).where(and(eq(modelFiles.versionId, version.id), eq(modelFiles.name, 'tokenizer.json')))
  if (!file) throw new ApiError(422, `Version ${reference.version} of this model has no tokenizer.json`, { code: 'tokenizer_missing', param: 'tokenizer' })
  const cached = tokenizers.get(file.artifactKey)
  if (cached) return cached
  if (file.size > MAX_TOKENIZER_BYTES) throw new ApiError(422, 'tokenizer.json is larger than 32 MiB', { code: 'tokenizer_too_large', param: 'tokenizer' })
  const object = await env.ARTIFACTS.get(file.artifactKey)
  if (!object) throw new ApiError(500, 'tokenizer.json is missing from storage', { code: 'artifact_missing' })
  let tokenizer: TextTokenizer
  try {
    tokenizer = loadTokenizer(JSON.parse(await object.text()))
  } catch (cause) {
    const message = cause instanceof TokenizerError ? cause.message : 'tokenizer.json is not valid JSON'
    throw new ApiError(422, message, { code: 'invalid_tokenizer', param: 'tokenizer' })
  }
  if (tokenizers.size >= 4) tokenizers.delete(tokenizers.keys().next().value!)
  tokenizers.set(file.artifactKey, tokenizer)
  return tokenizer
}

export function watermarkDetectRoutes() {
  return createRouter().openapi(detect, async (c) => {
    const body = c.req.valid('json')
    const tokenizer = await tokenizerOf(c.env, c.get('auth').tenantId, body.tokenizer)
    const result = await scoreGreenList(tokenizer.encode(body.text), {
      key: body.key,
      gamma: body.gamma,
      contextWidth: body.context_width,
      ignoreRepeated: body.ignore_repeated_ngrams,
      zThreshold: body.z_threshold,
    })
    return c.json({ object: 'watermark.detection' as const, scheme: body.scheme, gamma: body.gamma, context_width: body.context_width, z_threshold: body.z_threshold, ...result }, 200)
  })
}
