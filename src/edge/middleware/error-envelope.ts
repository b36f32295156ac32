import type { Context, ErrorHandler, NotFoundHandler } from 'hono'
import { HTTPException } from 'hono/http-exception'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import type { ZodError } from 'zod'
import type { AppEnv } from '../env.ts'
import { ApiError } from '../errors.ts'
import { REQUEST_ID_HEADER } from './request-id.ts'

function envelope(c: Context<AppEnv>, error: ApiError): Response {
  const response = c.json(error.toBody(), error.status)
  for (const [name, value] of Object.entries(error.headers)) response.headers.set(name, value)
  const id = c.get('requestId')
  if (id) response.headers.set(REQUEST_ID_HEADER, id)
  return response
}

export const handleError: ErrorHandler<AppEnv> = (err, c) => {
  if (err instanceof ApiError) return envelope(c, err)
  if (err instanceof HTTPException) {
    const status = err.status as ContentfulStatusCode
    const code = status === 413 ? 'request_too_large' : status === 400 ? 'invalid_json' : null
    return envelope(c, new ApiError(status, err.message || 'Request failed', code ? { code } : {}))
  }
  // Faults are logged with the request id and answered without internals.
  console.error(JSON.stringify({ level: 'error', request_id: c.get('requestId'), message: String(err) }))
  return envelope(c, new ApiError(500, 'Internal error; quote the request id when reporting it', { code: 'internal_error' }))
}

export const handleNotFound: NotFoundHandler<AppEnv> = (c) =>
  envelope(c, new ApiError(404, `No route for ${c.req.method} ${new URL(c.req.url).pathname}`, { code: 'route_not_found' }))

function pathOf(segments: readonly PropertyKey[]): string {
  return segments.map(String).join('.')
}

// Turns a zod failure into a 400 that names the offending field.
export function validationError(error: ZodError, target: string): ApiError {
  const issue = error.issues[0]
  if (!issue) return new ApiError(400, `Invalid ${target}`, { code: 'invalid_request' })
  if (issue.code === 'unrecognized_keys') {
    const param = pathOf([...issue.path, issue.keys[0] ?? ''])
    return new ApiError(400, `Unknown field '${param}'`, { code: 'unknown_field', param })
  }
  const param = pathOf(issue.path)
  const where = param ? `'${param}'` : `the ${target}`
  return new ApiError(400, `Invalid ${where}: ${issue.message}`, { code: 'invalid_value', ...(param ? { param } : {}) })
}

export const validationHook = (
  result: { success: true } | { success: false; error: ZodError; target: string },
  c: Context<AppEnv>,
): Response | undefined => {
  if (result.success) return undefined
  return envelope(c, validationError(result.error, result.target === 'json' ? 'body' : result.target))
}
