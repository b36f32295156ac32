import type { MiddlewareHandler } from 'hono'
import type { AppEnv } from '../env.ts'
import { ApiError } from '../errors.ts'

// JSON parsing would quietly turn invalid UTF-8 into U+FFFD and moderate
// something the client never sent; this refuses it first. Hono keeps the
// bytes it read, so the JSON validator after it reads them again for free.
export function requireUtf8Body(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const bytes = await c.req.arrayBuffer()
    try {
      new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes)
    } catch {
      throw new ApiError(400, 'The request body is not valid UTF-8', { code: 'invalid_utf8', param: 'body' })
    }
    await next()
  }
}
