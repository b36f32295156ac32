import { createRoute, z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { flattenInstances } from '../../shared/model-io.ts'
import type { RunResponse } from '../../shared/inference-wire.ts'
import type { Observation } from '../../shared/model-monitoring.ts'
import type { MaskedAnswer, MaskingPolicy } from '../../shared/masking/mask-probabilities.ts'
import type { GuardPolicyInput } from '../../shared/guard/guard-policy.ts'
import { guardAfter, guardBefore } from '../guard/guard-hook.ts'
import { watermarkAnswers } from '../guard/watermark-answers.ts'
import { effectiveMasking, maskRows } from '../inference/answer-policy.ts'
import { versionNameSchema } from '../artifacts/artifact-names.ts'
import { database } from '../db/client.ts'
import type { AppEnv } from '../env.ts'
import { ApiError } from '../errors.ts'
import { runModel } from '../inference/runner-inference.ts'
import { servedModel, type ServedModel } from '../inference/served-model.ts'
import { requireScope } from '../middleware/auth.ts'
import { readSettings } from '../settings.ts'
import { meterUsage } from '../usage/meter-usage.ts'
import { bearerSecurity, conflictResponse, errorResponses, idParam, jsonBody, jsonResponse, tooLargeResponse } from './api-schemas.ts'
import { createRouter } from './router.ts'

const modelParams = z.object({ id: idParam('id') })
const versionQuery = z.object({ version: versionNameSchema.optional().openapi({ param: { name: 'version', in: 'query' } }) })

const predict = createRoute({
  method: 'post',
  path: '/v1/models/{id}/predict',
  tags: ['inference'],
  summary: 'Classify rows with the production version (or ?version=)',
  security: bearerSecurity,
  middleware: [requireScope('inference')] as const,
  request: {
    params: modelParams,
    query: versionQuery,
    body: jsonBody(z.strictObject({ instances: z.array(z.unknown()) })),
  },
  responses: {
    200: jsonResponse(
      z.object({ predictions: z.array(z.string()), probabilities: z.array(z.array(z.number())).optional(), model_version: z.string() }),
      'One prediction per instance',
    ),
    ...errorResponses,
    ...conflictResponse,
    ...tooLargeResponse,
  },
})

const oipTensor = z.strictObject({
  name: z.string().min(1),
  shape: z.array(z.number().int().nonnegative()).min(1),
  datatype: z.literal('FP32'),
  data: z.array(z.unknown()),
  parameters: z.record(z.string(), z.unknown()).optional(),
})

const inferBody = z.strictObject({
  id: z.string().max(200).optional(),
  inputs: z.array(oipTensor).length(1, 'Moat serves models with one input'),
  outputs: z.array(z.strictObject({ name: z.string() })).optional(),
  parameters: z.record(z.string(), z.unknown()).optional(),
})

const inferResponse = z.object({
  model_name: z.string(),
  model_version: z.string(),
  id: z.string().optional(),
  outputs: z.array(z.object({ name: z.string(), datatype: z.literal('FP32'), shape: z.array(z.number()), data: z.array(z.number()) })),
})

const infer = createRoute({
  method: 'post',
  path: '/v2/models/{id}/infer',
  tags: ['inference'],
  summary: 'Open Inference Protocol (KServe v2 / Triton), on the production version (or ?version=)',
  security: bearerSecurity,
  middleware: [requireScope('inference')] as const,
  request: { params: modelParams, query: versionQuery, body: jsonBody(inferBody) },
  responses: { 200: jsonResponse(inferResponse, 'The outputs'), ...errorResponses, ...conflictResponse, ...tooLargeResponse },
})

// Hands what a request saw to the version's monitor, off the response path.
function monitor(c: Context<AppEnv>, served: ServedModel, observation: Observation): void {
  const stub = c.env.MODEL_MONITOR.get(c.env.MODEL_MONITOR.idFromName(served.version.id))
  const identity = { tenantId: served.model.tenantId, modelId: served.model.id, version: served.version.version }
  c.executionCtx.waitUntil(stub.record(identity, observation).catch(() => undefined))
}

function topConfidences(output: { dims: number[]; data: number[] } | undefined): number[] {
  if (!output) return []
  const rows = output.dims[0] ?? 0
  const width = rows === 0 ? 0 : output.data.length / rows
  return Array.from({ length: rows }, (_, row) => Math.max(...output.data.slice(row * width, row * width + width)))
}

type GuardedAnswer = { result: RunResponse; answers: MaskedAnswer[]; masking: MaskingPolicy }

function rowsOf(output: { dims: number[]; data: number[] }): number[][] {
  const rows = output.dims[0] ?? 0
  const width = rows === 0 ? 0 : output.data.length / rows
  return Array.from({ length: rows }, (_, row) => output.data.slice(row * width, row * width + width))
}

// One classification, guarded: the guard admits the client (or throttles,
// blocks, degrades it), the model answers, the guard sees the raw answer,
// DAWN marks its share, and the answer is masked as the model's policy, or
// the guard's stricter degrade, says.
async function serve(c: Context<AppEnv>, served: ServedModel, instances: unknown, param: string): Promise<GuardedAnswer> {
  const policy = served.model.policy as { guard?: GuardPolicyInput; masking?: unknown } | null
  const ticket = await guardBefore(c, {
    model: served.model.id,
    kind: 'classifier',
    policy: policy?.guard,
    units: Array.isArray(instances) ? instances.length : 0,
  })
  const started = Date.now()
  let result: RunResponse
  let inputs: number[][]
  try {
    const checked = flattenInstances(instances, served.rowDims, readSettings(c.env).predictMaxRows)
    if (!checked.ok) throw new ApiError(checked.status, checked.message, { code: checked.status === 413 ? 'too_many_rows' : 'invalid_input', param: checked.param.replace(/^instances/, param) })
    const width = checked.data.length / checked.rows
    inputs = Array.from({ length: checked.rows }, (_, row) => checked.data.slice(row * width, row * width + width))
    result = await runModel(c.env, served.artifact, served.version.probe ?? null, {
      name: served.inputName,
      dims: [checked.rows, ...served.rowDims],
      data: checked.data,
    })
  } catch (error) {
    await guardAfter(c, ticket, null)
    if (!(error instanceof ApiError && error.status < 500)) monitor(c, served, { latencyMs: Date.now() - started, error: true, predictions: [], topConfidences: [] })
    throw error
  }
  const first = result.outputs[0]
  if (!first) {
    await guardAfter(c, ticket, null)
    throw new ApiError(502, 'The model returned no output', { code: 'runner_error' })
  }
  const raw = rowsOf(first)
  monitor(c, served, {
    latencyMs: Date.now() - started,
    error: false,
    predictions: argmaxLabels(first, served.model.labels ?? null).predictions,
    topConfidences: topConfidences(first),
  })
  await guardAfter(c, ticket, { units: raw.length, report: { kind: 'classifier', instances: raw.map((probabilities, row) => ({ input: inputs[row]!, probabilities })) } })
  const marked = await watermarkAnswers(c.env, ticket, raw.map((probabilities, row) => ({ input: inputs[row]!, probabilities })))
  const masking = effectiveMasking(policy, ticket.masking)
  await meterUsage(c, 'predict.rows', raw.length)
  const client = `${ticket.client.keyId}/${ticket.client.endUser ?? ''}`
  return { result, answers: await maskRows(c.env, client, marked, inputs, masking), masking }
}

function argmaxLabels(output: { dims: number[]; data: number[] }, labels: string[] | null): { predictions: string[]; probabilities: number[][] } {
  const width = output.dims.slice(1).reduce((product, dim) => product * dim, 1)
  const predictions: string[] = []
  const probabilities: number[][] = []
  for (let row = 0; row < (output.dims[0] ?? 0); row++) {
    const values = output.data.slice(row * width, row * width + width)
    const best = values.indexOf(Math.max(...values))
    predictions.push(labels?.[best] ?? String(best))
    probabilities.push(values)
  }
  return { predictions, probabilities }
}

export function predictRoutes() {
  return createRouter()
    .openapi(predict, async (c) => {
      const served = await servedModel(database(c.env), c.get('auth').tenantId, c.req.valid('param').id, c.req.valid('query').version)
      const { answers } = await serve(c, served, c.req.valid('json').instances, 'instances')
      const labels = served.model.labels
      const predictions = answers.map((answer) => labels?.[answer.label] ?? String(answer.label))
      const probabilities = answers.every((answer) => answer.probabilities) ? answers.map((answer) => answer.probabilities!) : undefined
      return c.json({ predictions, ...(probabilities ? { probabilities } : {}), model_version: served.version.version }, 200)
    })
    .openapi(infer, async (c) => {
      const body = c.req.valid('json')
      const served = await servedModel(database(c.env), c.get('auth').tenantId, c.req.valid('param').id, c.req.valid('query').version)
      const input = body.inputs[0]!
      if (input.name !== served.inputName) {
        throw new ApiError(400, `The model's input is '${served.inputName}', not '${input.name}'`, { code: 'invalid_input', param: 'inputs.0.name' })
      }
      const [rows, ...rest] = input.shape
      if (rest.join('x') !== served.rowDims.join('x')) {
        throw new ApiError(400, `inputs[0].shape must be [N, ${served.rowDims.join(', ')}]`, { code: 'invalid_input', param: 'inputs.0.shape' })
      }
      const flat = input.data.flat(Infinity as 1)
      const width = served.rowDims.reduce((product, dim) => product * dim, 1)
      if (flat.length !== (rows ?? 0) * width) {
        throw new ApiError(400, `inputs[0].data has ${flat.length} values; shape [${input.shape.join(', ')}] needs ${(rows ?? 0) * width}`, {
          code: 'invalid_input',
          param: 'inputs.0.data',
        })
      }
      const instances = Array.from({ length: rows ?? 0 }, (_, row) => flat.slice(row * width, row * width + width))
      const { result, answers, masking } = await serve(c, served, instances, 'inputs.0.data')
      const wanted = body.outputs?.map((output) => output.name)
      // Masked, a classifier answers with its first output only, masked (one-hot
      // for label_only): a second output (logits) would give the rest away.
      if (masking.mode !== 'none') {
        const first = result.outputs[0]!
        const width = first.dims.slice(1).reduce((product, dim) => product * dim, 1)
        const data = answers.flatMap((answer) => answer.probabilities ?? Array.from({ length: width }, (_, i) => (i === answer.label ? 1 : 0)))
        result.outputs = [{ name: first.name, dims: first.dims, data }]
      }
      return c.json(
        {
          model_name: served.model.name,
          model_version: served.version.version,
          ...(body.id ? { id: body.id } : {}),
          outputs: result.outputs
            .filter((output) => !wanted || wanted.includes(output.name))
            .map((output) => ({ name: output.name, datatype: 'FP32' as const, shape: output.dims, data: output.data })),
        },
        200,
      )
    })
}
