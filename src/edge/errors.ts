import type { ContentfulStatusCode } from 'hono/utils/http-status'

// The one error envelope, OpenAI's shape, which clients already parse:
// {"error": {"message", "type", "param", "code"}}.

export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'conflict_error'
  | 'rate_limit_error'
  | 'server_error'

export type ErrorBody = {
  error: { message: string; type: ErrorType; param: string | null; code: string | null }
}

const TYPE_BY_STATUS: Record<number, ErrorType> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  409: 'conflict_error',
  411: 'invalid_request_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  422: 'invalid_request_error',
  429: 'rate_limit_error',
}

export function errorTypeFor(status: number): ErrorType {
  return TYPE_BY_STATUS[status] ?? (status >= 500 ? 'server_error' : 'invalid_request_error')
}

export class ApiError extends Error {
  readonly status: ContentfulStatusCode
  readonly code: string | null
  readonly param: string | null
  readonly headers: Record<string, string>

  constructor(
    status: ContentfulStatusCode,
    message: string,
    options: { code?: string; param?: string; headers?: Record<string, string> } = {},
  ) {
    super(message)
    this.status = status
    this.code = options.code ?? null
    this.param = options.param ?? null
    this.headers = options.headers ?? {}
  }

  toBody(): ErrorBody {
    return { error: { message: this.message, type: errorTypeFor(this.status), param: this.param, code: this.code } }
  }
}

export const notFound = (what: string, param?: string) =>
  new ApiError(404, `No such ${what}`, { code: `${what.replace(/ /g, '_')}_not_found`, ...(param ? { param } : {}) })
