import { createRoute, z } from '@hono/zod-openapi'
import { and, desc, eq, inArray, lt } from 'drizzle-orm'
import { OWNERSHIP_P_VALUE, verifyOwnership, type SuspectAnswer } from '../../shared/guard/dawn.ts'
import { checkOutboundUrl } from '../../shared/outbound-url.ts'
import { database } from '../db/client.ts'
import { watermarkQueries } from '../db/schema.ts'
import type { Env } from '../env.ts'
import { ApiError } from '../errors.ts'
import { requireScope } from '../middleware/auth.ts'
import { findModel, type ModelRow } from '../models/model-store.ts'
import { readSettings } from '../settings.ts'
import { unixSeconds } from '../unix-seconds.ts'
import { bearerSecurity, errorResponses, idParam, jsonBody, jsonResponse, listQuerySchema, listSchema, toList } from './api-schemas.ts'
import { createRouter } from './router.ts'

// The watermark's evidence: the marked queries DAWN recorded for a model,
// and the test of a suspect model against them.

const MAX_VERIFIED = 5000
const SUSPECT_BATCH = 100
const SUSPECT_TIMEOUT_MS = 10_000

const modelParams = z.object({ id: idParam('id') })

const querySchema = z
  .object({
    object: z.literal('watermark.query'),
    id: z.string(),
    client_id: z.string(),
    kind: z.enum(['mark', 'control']),
    // The label Moat answered: the changed one for a mark, the model's own
    // for a control.
    watermark_label: z.number().int(),
    classes: z.number().int(),
    input: z.array(z.number()),
    created_at: z.number().int(),
  })
  .openapi('WatermarkQuery')

const labelSchema = z.union([z.number().int().nonnegative(), z.string().min(1).max(200)])

const verifyBody = z
  .strictObject({
    // The suspect's answers on the recorded inputs (marks and controls), by
    // query id…
    answers: z.array(z.strictObject({ query_id: z.string().max(64), label: labelSchema })).min(1).max(MAX_VERIFIED).optional(),
    // …or a suspect endpoint that answers Moat's predict shape
    // ({"instances": [...]} → {"predictions": [...]}), queried here.
    endpoint: z.strictObject({ url: z.string().url().max(2048), headers: z.record(z.string(), z.string().max(4096)).optional() }).optional(),
    // Only the marks given to this client (the suspected thief); all by default.
    client_id: z.string().max(200).optional(),
    p_value_threshold: z.number().gt(0).max(0.05).default(OWNERSHIP_P_VALUE),
  })
  .refine((body) => (body.answers === undefined) !== (body.endpoint === undefined), { message: "give exactly one of 'answers' and 'endpoint'" })

const verdictSchema = z
  .object({
    object: z.literal('ownership.verification'),
    model: z.string(),
    queries: z.number().int(),
    matches: z.number().int(),
    match_rate: z.number(),
    controls: z.number().int(),
    control_disagreement: z.number(),
    chance_rate: z.number(),
    p_value: z.number(),
    threshold: z.number(),
    verdict: z.enum(['ownership_proven', 'not_proven']),
  })
  .openapi('OwnershipVerification')

const listQueries = createRoute({
  method: 'get',
  path: '/v1/models/{id}/ownership/queries',
  tags: ['guard'],
  summary: 'The marked and control queries DAWN recorded for this model, with their inputs, newest first',
  security: bearerSecurity,
  middleware: [requireScope('admin')] as const,
  request: { params: modelParams, query: listQuerySchema.extend({ client_id: z.string().max(200).optional().openapi({ param: { name: 'client_id', in: 'query' } }) }) },
  responses: { 200: jsonResponse(listSchema(querySchema), 'Marked queries'), ...errorResponses },
})

const verify = createRoute({
  method: 'post',
  path: '/v1/models/{id}/ownership/verify',
  tags: ['guard'],
  summary: "Tests a suspect model's answers on the recorded marked inputs: match rate, binomial p-value against chance, verdict",
  security: bearerSecurity,
  middleware: [requireScope('admin')] as const,
  request: { params: modelParams, body: jsonBody(verifyBody) },
  responses: { 200: jsonResponse(verdictSchema, 'The verification'), 422: errorResponses[400], ...errorResponses },
})

type QueryRow = typeof watermarkQueries.$inferSelect

async function inputOf(env: Env, row: QueryRow): Promise<number[]> {
  const object = await env.ARTIFACTS.get(row.inputKey)
  if (!object) throw new ApiError(500, `The input of ${row.id} is missing from storage`, { code: 'watermark_input_missing' })
  return (await object.json()) as number[]
}

function labelIndex(model: ModelRow, label: number | string, param: string): number {
  if (typeof label === 'number') return label
  const named = model.labels?.indexOf(label) ?? -1
  if (named >= 0) return named
  if (/^\d+$/.test(label)) return Number(label)
  throw new ApiError(422, `'${label}' is not one of the model's labels`, { code: 'unknown_label', param })
}

// Checked before anything else about the request, so a refused address is
// always the answer for one, whatever the model's state.
function suspectUrl(env: Env, url: string): URL {
  const check = checkOutboundUrl(url, readSettings(env).outbound)
  if (!check.ok) throw new ApiError(400, `Suspect URL refused: ${check.reason}`, { code: 'url_not_allowed', param: 'endpoint.url' })
  return check.url
}

async function askSuspect(env: Env, model: ModelRow, endpoint: { url: string; headers?: Record<string, string> | undefined }, rows: QueryRow[]) {
  const url = suspectUrl(env, endpoint.url)
  const labels: number[] = []
  for (let start = 0; start < rows.length; start += SUSPECT_BATCH) {
    const batch = rows.slice(start, start + SUSPECT_BATCH)
    const instances = await Promise.all(batch.map((row) => inputOf(env, row)))
    let response: Response
    try {
      response = await fetch(url.toString(), {
        method: 'POST',
        headers: { ...endpoint.headers, 'content-type': 'application/json' },
        body: JSON.stringify({ instances }),
        redirect: 'manual',
        signal: AbortSignal.timeout(SUSPECT_TIMEOUT_MS),
      })
    } catch (cause) {
      throw new ApiError(502, `The suspect endpoint did not answer: ${(cause as Error).message}`, { code: 'suspect_unreachable' })
    }
    if (!response.ok) throw new ApiError(502, `The suspect endpoint answered ${response.status}`, { code: 'suspect_error' })
    const body = (await response.json().catch(() => null)) as { predictions?: unknown } | null
    const predictions = body?.predictions
    if (!Array.isArray(predictions) || predictions.length !== batch.length) {
      throw new ApiError(502, `The suspect endpoint must answer {"predictions": [...]} with ${batch.length} labels`, { code: 'suspect_error' })
    }
    for (const prediction of predictions) {
      if (typeof prediction !== 'number' && typeof prediction !== 'string') throw new ApiError(502, 'A suspect prediction is not a label', { code: 'suspect_error' })
      labels.push(labelIndex(model, prediction, 'endpoint'))
    }
  }
  return labels
}

export function ownershipRoutes() {
  return createRouter()
    .openapi(listQueries, async (c) => {
      const db = database(c.env)
      const model = await findModel(db, c.get('auth').tenantId, c.req.valid('param').id)
      const { limit, after, client_id } = c.req.valid('query')
      const rows = await db
        .select()
        .from(watermarkQueries)
        .where(
          and(
            eq(watermarkQueries.tenantId, model.tenantId),
            eq(watermarkQueries.modelId, model.id),
            client_id ? eq(watermarkQueries.clientId, client_id) : undefined,
            after ? lt(watermarkQueries.id, after) : undefined,
          ),
        )
        .orderBy(desc(watermarkQueries.id))
        .limit(limit + 1)
      const inputs = await Promise.all(rows.slice(0, limit).map((row) => inputOf(c.env, row)))
      return c.json(
        toList(rows, limit, (row) => ({
          object: 'watermark.query' as const,
          id: row.id,
          client_id: row.clientId,
          kind: row.kind,
          watermark_label: row.watermarkLabel,
          classes: row.classes,
          input: inputs[rows.indexOf(row)]!,
          created_at: unixSeconds(row.createdAt),
        })),
        200,
      )
    })
    .openapi(verify, async (c) => {
      const db = database(c.env)
      const model = await findModel(db, c.get('auth').tenantId, c.req.valid('param').id)
      const body = c.req.valid('json')
      if (body.endpoint) suspectUrl(c.env, body.endpoint.url)
      const scope = and(eq(watermarkQueries.tenantId, model.tenantId), eq(watermarkQueries.modelId, model.id), body.client_id ? eq(watermarkQueries.clientId, body.client_id) : undefined)
      let pairs: SuspectAnswer[]
      let classes: number
      if (body.answers) {
        const ids = [...new Set(body.answers.map((answer) => answer.query_id))]
        const rows: QueryRow[] = []
        for (let start = 0; start < ids.length; start += 90) {
          rows.push(...(await db.select().from(watermarkQueries).where(and(scope, inArray(watermarkQueries.id, ids.slice(start, start + 90))))))
        }
        const byId = new Map(rows.map((row) => [row.id, row]))
        const unknown = ids.find((id) => !byId.has(id))
        // `!== undefined`: an empty id is unknown too, not a pass (it was a 500).
        if (unknown !== undefined) throw new ApiError(400, `No marked query '${unknown}' for this model`, { code: 'unknown_query', param: 'answers' })
        pairs = body.answers.map((answer, i) => {
          const row = byId.get(answer.query_id)!
          return { kind: row.kind, label: row.watermarkLabel, suspectLabel: labelIndex(model, answer.label, `answers.${i}.label`) }
        })
        classes = Math.max(...rows.map((row) => row.classes))
      } else {
        const rows = await db.select().from(watermarkQueries).where(scope).orderBy(desc(watermarkQueries.id)).limit(MAX_VERIFIED)
        if (rows.length === 0) throw new ApiError(422, 'This model has no marked queries yet', { code: 'no_watermarks' })
        const labels = await askSuspect(c.env, model, body.endpoint!, rows)
        pairs = rows.map((row, i) => ({ kind: row.kind, label: row.watermarkLabel, suspectLabel: labels[i]! }))
        classes = Math.max(...rows.map((row) => row.classes))
      }
      return c.json({ object: 'ownership.verification' as const, model: model.id, ...verifyOwnership(pairs, classes, body.p_value_threshold) }, 200)
    })
}
