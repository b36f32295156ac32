import type { Context } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'

// Moat's one error shape (OpenAI's), so the edge parses runner refusals with
// the same code it uses for everything else.

export type ErrorEnvelope = {
  error: { message: string; type: string; param: string | null; code: string | null }
}

export type ErrorDetails = {
  status: ContentfulStatusCode
  message: string
  type: string
  code: string | null
  param?: string | null
  headers?: Record<string, string>
}

export function errorResponse(c: Context, details: ErrorDetails): Response {
  const body: ErrorEnvelope = {
    error: { message: details.message, type: details.type, param: details.param ?? null, code: details.code },
  }
  return c.json(body, details.status, details.headers)
}
