import type { MiddlewareHandler } from 'hono'
import { observeRequest } from '../../shared/traffic/request-observation.ts'
import type { AppEnv } from '../env.ts'
import { addObservation } from '../usage/request-usage.ts'

// Observes every authenticated request for the dashboard: its outcome (429s
// included) and its latency up to the response's headers (a stream's body
// runs longer). Nothing waits for it: the observation is sent after the
// response through the usage queue, and it is never a usage event, so a
// refused request stays unbilled. Registered before auth, so that the key
// look-up counts; a request without a valid key has no tenant to count for.
export function observeRequests(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = Date.now()
    await next()
    const auth = c.get('auth') as AppEnv['Variables']['auth'] | undefined
    if (!auth) return
    const observation = observeRequest({
      requestId: c.get('requestId'),
      tenantId: auth.tenantId,
      keyId: auth.keyId,
      status: c.res.status,
      latencyMs: Date.now() - started,
      timestamp: started,
    })
    addObservation(c, observation)
  }
}
