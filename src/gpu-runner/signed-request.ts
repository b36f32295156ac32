import { createHash } from 'node:crypto'
import { createMiddleware } from 'hono/factory'
import { constantTimeEqual } from '../shared/constant-time.ts'
import { verifyRunnerSignature } from '../shared/runner-signature.ts'
import { errorResponse } from './error-envelope.ts'
import type { ReplayCache } from './replay-cache.ts'

// Lets through only requests the edge signed: a valid HMAC within the time
// window, a body whose SHA-256 is the signed one, and a signature not seen
// before. The verified body is handed on as text so no handler reads it twice.

export type SignedRequestVariables = { signedBody: string }

export type SignedRequestOptions = {
  secret: string
  replayCache: ReplayCache
  now?: () => number
}

export function signedRequest(options: SignedRequestOptions) {
  return createMiddleware<{ Variables: SignedRequestVariables }>(async (c, next) => {
    const url = new URL(c.req.url)
    const check = await verifyRunnerSignature({
      secret: options.secret,
      method: c.req.method,
      path: url.pathname + url.search,
      headers: c.req.raw.headers,
      now: options.now?.(),
    })
    const refuse = (message: string, code: string) =>
      errorResponse(c, { status: 401, message, type: 'authentication_error', code })
    if (!check.ok) return refuse(`request signature rejected: ${check.reason}`, 'invalid_signature')

    const body = Buffer.from(await c.req.arrayBuffer())
    const bodySha256 = createHash('sha256').update(body).digest('hex')
    if (!constantTimeEqual(bodySha256, check.bodySha256)) {
      return refuse('request body does not match its signed SHA-256', 'body_hash_mismatch')
    }
    if (!options.replayCache.remember(check.signature)) return refuse('request was already seen', 'replayed_request')

    c.set('signedBody', body.toString('utf8'))
    await next()
  })
}
