import { Hono } from 'hono'
import { parsePointer, readPointer, writePointer } from '../../shared/proxy/json-pointer.ts'
import type { GuardPolicyInput } from '../../shared/guard/guard-policy.ts'
import { database } from '../db/client.ts'
import type { AppEnv } from '../env.ts'
import { ApiError } from '../errors.ts'
import { guardAfter, guardAround } from '../guard/guard-hook.ts'
import { watermarkAnswers } from '../guard/watermark-answers.ts'
import { effectiveMasking, maskRows } from '../inference/answer-policy.ts'
import { requireScope } from '../middleware/auth.ts'
import { callUpstream, upstreamError } from '../proxy/call-upstream.ts'
import { findRouteForProxy, routePolicyOf } from '../proxy/route-store.ts'

const FORWARDED_HEADERS = ['content-type', 'accept']

// The numbers in a request body, in order: the classifier's input as the
// guard's detectors and the keyed noise see it.
function numbersOf(value: unknown, out: number[] = []): number[] {
  if (typeof value === 'number') out.push(value)
  else if (Array.isArray(value)) for (const item of value) numbersOf(item, out)
  else if (value && typeof value === 'object') for (const item of Object.values(value)) numbersOf(item, out)
  return out
}

const isRow = (value: unknown): value is number[] => Array.isArray(value) && value.length > 0 && value.every((item) => typeof item === 'number')

// ANY /v1/proxy/{route}/{path…} for json-classifier routes: the request goes
// to the route's target as it came; the probabilities found at the route's
// JSON pointer (one row, or a row per instance) are masked before the answer
// goes back, and the guard sees them first.
export function proxyPassthroughRoutes() {
  const app = new Hono<AppEnv>()
  app.all('/v1/proxy/:route/*', requireScope('inference'), async (c) => {
    const tenantId = c.get('auth').tenantId
    const route = await findRouteForProxy(database(c.env), tenantId, c.req.param('route'))
    if (route.kind !== 'json-classifier') throw new ApiError(400, `Route '${route.name}' is an ${route.kind} route: use /v1/chat/completions`, { code: 'invalid_value' })
    const url = new URL(c.req.url)
    const prefix = `/v1/proxy/${encodeURIComponent(route.name)}`
    const path = url.pathname.slice(url.pathname.indexOf(prefix) + prefix.length) + url.search
    const body = ['GET', 'HEAD'].includes(c.req.method) ? null : await c.req.text()
    const policy = routePolicyOf(route)
    let parsedBody: unknown = null
    try {
      parsedBody = body ? JSON.parse(body) : null
    } catch {
      parsedBody = null
    }
    const input = numbersOf(parsedBody)
    const headers: Record<string, string> = {}
    for (const name of FORWARDED_HEADERS) {
      const value = c.req.header(name)
      if (value) headers[name] = value
    }
    const { ticket, result: answer } = await guardAround(
      c,
      { model: route.name, kind: 'classifier', policy: policy.guard as GuardPolicyInput | undefined, units: 1 },
      {
        call: async (signal) => {
          const answer = await callUpstream(c.env, route, { path, method: c.req.method, headers, body, signal })
          if (!answer.response.ok) throw await upstreamError(answer)
          return answer
        },
        discard: async (answer) => answer.response.body?.cancel(),
      },
    )
    const document = (await answer.response.json().catch(() => undefined)) as unknown
    const pointer = parsePointer(route.probabilitiesPath ?? '')
    const found = document === undefined || !pointer ? undefined : readPointer(document, pointer)
    const rows = isRow(found) ? [found] : Array.isArray(found) && found.every(isRow) ? (found as number[][]) : null
    if (!rows) {
      await guardAfter(c, ticket, { units: 1 })
      throw new ApiError(502, `The upstream's answer has no probabilities at ${route.probabilitiesPath}`, { code: 'upstream_error' })
    }
    const inputs = rows.map(() => input)
    await guardAfter(c, ticket, { units: 1, report: { kind: 'classifier', instances: rows.map((probabilities) => ({ input, probabilities })) } })
    // DAWN marks its share before masking, as for hosted models.
    const marked = await watermarkAnswers(c.env, ticket, rows.map((probabilities) => ({ input, probabilities })))
    const masking = effectiveMasking(policy, ticket.masking)
    const masked = await maskRows(c.env, `${ticket.client.keyId}/${ticket.client.endUser ?? ''}`, marked, inputs, masking)
    const shaped = masked.map((answer, row) => answer.probabilities ?? rows[row]!.map((_, i) => (i === answer.label ? 1 : 0)))
    writePointer(document, pointer!, isRow(found) ? shaped[0] : shaped)
    return c.json(document as object, 200, { 'x-moat-upstream': String(answer.target) })
  })
  return app
}
