import type { Hono } from 'hono'
import { z } from 'zod'
import { inspectRequestSchema, runRequestSchema, type InspectResponse, type RunResponse } from '../../shared/inference-wire.ts'
import { errorResponse } from '../error-envelope.ts'
import type { SignedRequestVariables } from '../signed-request.ts'
import { BatcherFullError, type DynamicBatcher } from './dynamic-batcher.ts'
import { ModelLoadError, type InferenceBackend } from './inference-backend.ts'
import { ModelRefusedError, type ModelCache } from './model-cache.ts'

export type InferenceRoutesOptions = {
  backend: InferenceBackend
  models: ModelCache
  batcher: DynamicBatcher
  signed: import('hono').MiddlewareHandler<{ Variables: SignedRequestVariables }>
  retryAfterSeconds: number
}

type Failure = { status: 400 | 404 | 409 | 413 | 422 | 429; code: string; message: string }

function describe(error: z.ZodError): string {
  const issue = error.issues[0]
  return issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'invalid body'
}

class BadRequestError extends Error {
  override readonly name = 'BadRequestError'
}

function failure(error: unknown): Failure | null {
  if (error instanceof BadRequestError) return { status: 400, code: 'invalid_request', message: error.message }
  if (error instanceof ModelLoadError) return { status: 422, code: 'model_load_failed', message: error.message }
  if (error instanceof ModelRefusedError) return { status: error.code === 'artifact_missing' ? 404 : 409, code: error.code, message: error.message }
  if (error instanceof BatcherFullError) return { status: 429, code: 'runner_full', message: `inference queue is full: ${error.message}` }
  // ONNX Runtime's own complaint about a tensor that does not fit the model
  // is the caller's error; the edge checks shapes first, so this is a backstop.
  if (error instanceof Error && /invalid dimensions|invalid rank|unexpected input data type/i.test(error.message)) {
    return { status: 400, code: 'invalid_input', message: error.message }
  }
  return null
}

// POST /inference/inspect loads a model (registration): its real inputs and
// outputs and its answers on the behavioural probe. POST /inference/run
// serves rows through the dynamic batcher. Both are signed by the edge.
export function mountInferenceRoutes(app: Hono<{ Variables: SignedRequestVariables }>, options: InferenceRoutesOptions): void {
  const handle = async (c: import('hono').Context, work: (body: unknown) => Promise<unknown>) => {
    let body: unknown
    try {
      body = JSON.parse(c.get('signedBody'))
    } catch {
      return errorResponse(c, { status: 400, message: 'body must be JSON', type: 'invalid_request_error', code: 'invalid_json' })
    }
    try {
      return c.json(await work(body))
    } catch (error) {
      const known = failure(error)
      if (!known) throw error
      return errorResponse(c, {
        status: known.status,
        message: known.message,
        type: known.status === 429 ? 'rate_limit_error' : 'invalid_request_error',
        code: known.code,
        ...(known.status === 429 ? { headers: { 'retry-after': String(options.retryAfterSeconds) } } : {}),
      })
    }
  }

  app.post('/inference/inspect', options.signed, (c) =>
    handle(c, async (body) => {
      const parsed = inspectRequestSchema.safeParse(body)
      if (!parsed.success) throw new BadRequestError(describe(parsed.error))
      const { artifact, probe } = parsed.data
      const model = await options.models.get(artifact, null)
      const response: InspectResponse = {
        backend: options.backend.name,
        inputs: model.inputs,
        outputs: model.outputs,
        probe: await options.models.probe(model, probe.seed, probe.rows),
      }
      return response
    }),
  )

  app.post('/inference/run', options.signed, (c) =>
    handle(c, async (body) => {
      const parsed = runRequestSchema.safeParse(body)
      if (!parsed.success) throw new BadRequestError(describe(parsed.error))
      const { artifact, probe, input } = parsed.data
      const expected = input.dims.reduce((product, dim) => product * dim, 1)
      if (expected !== input.data.length) throw new BadRequestError(`input.data has ${input.data.length} values; dims ${input.dims.join('x')} need ${expected}`)
      const model = await options.models.get(artifact, probe)
      const result = await options.batcher.submit(model, artifact.sha256, input.name, Float32Array.from(input.data), input.dims)
      const response: RunResponse = {
        backend: options.backend.name,
        outputs: Object.entries(result.outputs).map(([name, tensor]) => ({ name, dims: tensor.dims, data: Array.from(tensor.data) })),
        compute_ms: result.computeMs,
        batch_rows: result.batchRows,
      }
      return response
    }),
  )
}
