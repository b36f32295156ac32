import type { MiddlewareHandler } from 'hono'
import type { QuotaDecision, QuotaLimit } from '../../shared/billing/quota-period.ts'
import type { AppEnv, Env } from '../env.ts'
import { ApiError } from '../errors.ts'
import { isBilledRequest } from '../usage/billed-request.ts'
import { emitEvent, eventId } from '../webhooks/emit-event.ts'

export function quotaStub(env: Pick<Env, 'USAGE_QUOTA'>, tenantId: string) {
  return env.USAGE_QUOTA.get(env.USAGE_QUOTA.idFromName(tenantId))
}

// Usage limits of the tenant (`PUT /v1/usage/limits`), enforced before the
// request runs by the tenant's UsageQuota object: a `requests` limit counts
// this request; any other limited meter refuses new requests once its period
// is spent. Refused: 429 `quota_exceeded` with `retry-after` until the period
// resets, and one `usage.quota_exceeded` event per meter and period. A
// request that is not billed in the end — a fault (5xx), a refusal further in
// (the guard's 429, a busy model), an idempotent replay — is given back, so
// that the plan counts exactly what the ledger bills.
// Reading usage and limits (GET /v1/usage…) stays open, so a tenant over its
// limits can still see where it stands.
export function enforceQuota(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const { limits, tenantId } = c.get('auth')
    if (limits.length === 0) return next()
    if (c.req.method === 'GET' && new URL(c.req.url).pathname.startsWith('/v1/usage')) return next()
    const requestLimits: QuotaLimit[] = limits.filter((limit) => limit.meter === 'requests')
    const otherLimits: QuotaLimit[] = limits.filter((limit) => limit.meter !== 'requests')
    const stub = quotaStub(c.env, tenantId)
    const admittedAt = Date.now()
    const decisions: QuotaDecision[] = await stub.admit(requestLimits, otherLimits, admittedAt)
    const refused = decisions.find((decision) => !decision.allowed)
    if (refused) {
      c.executionCtx.waitUntil(
        emitEvent(c.env, {
          id: await eventId(tenantId, refused.meter, refused.period, String(refused.resetAt)),
          tenantId,
          type: 'usage.quota_exceeded',
          data: { meter: refused.meter, period: refused.period, limit: refused.limit, used: refused.used, resets_at: new Date(refused.resetAt).toISOString() },
        }),
      )
      const retryAfter = Math.max(1, Math.ceil((refused.resetAt - Date.now()) / 1000))
      throw new ApiError(429, `Quota exceeded: ${refused.used} of ${refused.limit} ${refused.meter} this ${refused.period}`, {
        code: 'quota_exceeded',
        headers: { 'retry-after': String(retryAfter) },
      })
    }
    await next()
    if (!isBilledRequest(c) && requestLimits.length > 0) c.executionCtx.waitUntil(stub.refund(requestLimits, 1, admittedAt))
  }
}
