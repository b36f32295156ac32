import type { MiddlewareHandler } from 'hono'
import { createId } from '../../shared/ids.ts'
import type { AppEnv } from '../env.ts'

export const REQUEST_ID_HEADER = 'x-request-id'

// Every response carries a request id. It is always minted here, never taken
// from the client: usage event ids derive from it, and a client-chosen id
// could make two billable requests collide into one.
export function requestId(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const id = createId('req')
    c.set('requestId', id)
    c.set('idempotentReplay', false)
    c.header(REQUEST_ID_HEADER, id)
    await next()
    c.res.headers.set(REQUEST_ID_HEADER, id)
  }
}
