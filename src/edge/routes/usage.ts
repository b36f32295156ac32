import { createRoute, z } from '@hono/zod-openapi'
import { METER_NAMES, METERS, type MeterName } from '../../shared/meters.ts'
import {
  CSV_HEADER,
  toCloudEvents,
  toCsvLine,
  toLagoEvents,
  toStripeMeterEvents,
  type LedgerEvent,
} from '../../shared/billing/provider-events.ts'
import { QUOTA_PERIODS, type QuotaLimit } from '../../shared/billing/quota-period.ts'
import type { Env } from '../env.ts'
import { ApiError } from '../errors.ts'
import { quotaStub } from '../middleware/enforce-quota.ts'
import { requireScope } from '../middleware/auth.ts'
import { idempotency } from '../middleware/idempotency.ts'
import { buildUsageEvent } from '../../shared/usage-event.ts'
import { recordUsage } from '../usage/record-usage.ts'
import { GROUP_DIMENSIONS, usageReport, type GroupDimension } from '../usage/usage-report.ts'
import { ledgerPages } from '../usage/ledger-pages.ts'
import { bearerSecurity, errorResponses, jsonBody, jsonResponse } from './api-schemas.ts'
import { createRouter } from './router.ts'

const MAX_RANGE_MS = 400 * 24 * 60 * 60 * 1000

// A time as Unix seconds or ISO 8601.
const timeParam = (name: string) =>
  z
    .string()
    .transform((value, ctx) => {
      const ms = /^\d{1,12}$/.test(value) ? Number(value) * 1000 : Date.parse(value)
      if (!Number.isFinite(ms)) {
        ctx.addIssue({ code: 'custom', message: 'use Unix seconds or an ISO 8601 time' })
        return z.NEVER
      }
      return ms
    })
    .openapi({ param: { name, in: 'query' }, example: '2026-11-01T00:00:00Z' })

const rangeQuery = z.object({ start: timeParam('start'), end: timeParam('end').optional() })

function checkedRange(query: { start: number; end?: number | undefined }) {
  const end = query.end ?? Date.now()
  if (end <= query.start) throw new ApiError(400, "'end' must be after 'start'", { code: 'invalid_range', param: 'end' })
  if (end - query.start > MAX_RANGE_MS) throw new ApiError(400, 'A range covers at most 400 days', { code: 'invalid_range', param: 'start' })
  return { start: query.start, end }
}

const groupByParam = z
  .string()
  .default('meter')
  .transform((value, ctx) => {
    const parts = value.split(',').map((part) => part.trim()).filter(Boolean)
    const unknown = parts.find((part) => !(GROUP_DIMENSIONS as readonly string[]).includes(part))
    if (unknown) ctx.addIssue({ code: 'custom', message: `'${unknown}' is not one of ${GROUP_DIMENSIONS.join(', ')}` })
    if (parts.includes('day') && parts.includes('hour')) ctx.addIssue({ code: 'custom', message: "group by 'day' or 'hour', not both" })
    return [...new Set(['meter', ...parts])] as GroupDimension[]
  })
  .openapi({ param: { name: 'group_by', in: 'query' }, example: 'meter,key,day' })

const usageRowSchema = z.object({
  meter: z.string(),
  unit: z.string(),
  key_id: z.string().nullable().optional(),
  day: z.string().optional(),
  hour: z.string().optional(),
  value: z.number().int(),
  events: z.number().int(),
})

const report = createRoute({
  method: 'get',
  path: '/v1/usage',
  tags: ['usage'],
  summary: 'Totals from the ledger for [start, end), per meter and optionally per key and day or hour',
  security: bearerSecurity,
  middleware: [requireScope('usage:read')] as const,
  request: { query: rangeQuery.extend({ group_by: groupByParam }) },
  responses: {
    200: jsonResponse(
      z.object({ object: z.literal('usage'), start: z.number(), end: z.number(), group_by: z.array(z.string()), data: z.array(usageRowSchema) }),
      'Usage totals',
    ),
    ...errorResponses,
  },
})

export const EXPORT_FORMATS = ['csv', 'cloudevents', 'stripe', 'lago'] as const

const exportRoute = createRoute({
  method: 'get',
  path: '/v1/usage/export',
  tags: ['usage'],
  summary: 'The ledger events of [start, end) for a billing system',
  description:
    'csv (RFC 4180); cloudevents (CloudEvents 1.0 as OpenMeter ingests them); stripe (meter event payloads); lago (events). ' +
    "JSON formats answer {object: 'list', data, skipped}: events the provider would refuse (Stripe's 35-day window, negative values) are listed in skipped with the reason.",
  security: bearerSecurity,
  middleware: [requireScope('usage:read')] as const,
  request: {
    query: rangeQuery.extend({
      format: z.enum(EXPORT_FORMATS).openapi({ param: { name: 'format', in: 'query' } }),
      customer: z.string().min(1).max(200).optional().openapi({ param: { name: 'customer', in: 'query' }, description: "The provider's customer (Stripe), subject (OpenMeter) or subscription (Lago); default the tenant id" }),
    }),
  },
  responses: {
    200: {
      description: 'The export',
      content: { 'text/csv': { schema: z.string() }, 'application/json': { schema: z.object({ object: z.literal('list'), data: z.array(z.unknown()), skipped: z.array(z.object({ id: z.string(), reason: z.string() })) }) } },
    },
    ...errorResponses,
  },
})

const correctionSchema = z.strictObject({
  meter: z.enum(METER_NAMES as [string, ...string[]]),
  value: z.number().int().refine((value) => value !== 0, 'a correction changes the total'),
  key_id: z.string().max(64).nullable().optional(),
  timestamp: z.number().int().nonnegative().optional(),
  reason: z.string().min(1).max(500),
})

const correct = createRoute({
  method: 'post',
  path: '/v1/usage/corrections',
  tags: ['usage'],
  summary: 'Append a compensating event (the ledger is never edited)',
  security: bearerSecurity,
  middleware: [requireScope('admin'), idempotency()] as const,
  request: { body: jsonBody(correctionSchema) },
  responses: { 201: jsonResponse(z.object({ id: z.string(), meter: z.string(), value: z.number(), timestamp: z.number(), kind: z.literal('correction'), reason: z.string() }), 'The correction'), ...errorResponses },
})

const meters = createRoute({
  method: 'get',
  path: '/v1/usage/meters',
  tags: ['usage'],
  security: bearerSecurity,
  middleware: [requireScope('usage:read')] as const,
  responses: {
    200: jsonResponse(z.object({ object: z.literal('list'), data: z.array(z.object({ name: z.string(), unit: z.string(), aggregation: z.string(), description: z.string() })) }), 'The meter registry'),
    ...errorResponses,
  },
})

export const limitSchema = z.strictObject({
  meter: z.enum(METER_NAMES as [string, ...string[]]),
  period: z.enum(QUOTA_PERIODS),
  limit: z.number().int().nonnegative(),
})

export const limitsBody = z.strictObject({
  limits: z
    .array(limitSchema)
    .max(50)
    .refine((limits) => new Set(limits.map((limit) => `${limit.meter}/${limit.period}`)).size === limits.length, 'one limit per meter and period'),
})

export const limitStatusSchema = z.object({
  meter: z.string(),
  period: z.string(),
  limit: z.number().int(),
  used: z.number().int(),
  resets_at: z.string(),
})

const getLimits = createRoute({
  method: 'get',
  path: '/v1/usage/limits',
  tags: ['usage'],
  summary: 'The tenant’s usage limits and how much of each is used this period',
  security: bearerSecurity,
  middleware: [requireScope('usage:read')] as const,
  responses: { 200: jsonResponse(z.object({ object: z.literal('list'), data: z.array(limitStatusSchema) }), 'Limits'), ...errorResponses },
})

export async function limitStatus(env: Env, tenantId: string, limits: QuotaLimit[]) {
  if (limits.length === 0) return { object: 'list' as const, data: [] }
  const usage = await quotaStub(env, tenantId).usage(limits)
  return {
    object: 'list' as const,
    data: usage.map((decision) => ({
      meter: decision.meter,
      period: decision.period,
      limit: decision.limit,
      used: decision.used,
      resets_at: new Date(decision.resetAt).toISOString(),
    })),
  }
}

export function usageRoutes() {
  return createRouter()
    .openapi(getLimits, async (c) => c.json(await limitStatus(c.env, c.get('auth').tenantId, [...c.get('auth').limits]), 200))
    .openapi(meters, (c) =>
      c.json({ object: 'list' as const, data: Object.entries(METERS).map(([name, meter]) => ({ name, ...meter })) }, 200),
    )
    .openapi(report, async (c) => {
      const query = c.req.valid('query')
      const range = checkedRange(query)
      const data = await usageReport(c.env, c.get('auth').tenantId, range, query.group_by)
      return c.json({ object: 'usage' as const, start: Math.floor(range.start / 1000), end: Math.floor(range.end / 1000), group_by: query.group_by, data }, 200)
    })
    .openapi(exportRoute, async (c) => {
      const query = c.req.valid('query')
      const range = checkedRange(query)
      const tenantId = c.get('auth').tenantId
      const customer = query.customer ?? tenantId
      const pages = ledgerPages(c.env, tenantId, range)
      if (query.format === 'csv') {
        const body = streamText(async function* () {
          yield CSV_HEADER
          for await (const page of pages) for (const event of page) yield toCsvLine(event)
        })
        return new Response(body, {
          headers: { 'content-type': 'text/csv; charset=utf-8', 'content-disposition': 'attachment; filename="moat-usage.csv"' },
        }) as never
      }
      const now = Date.now()
      const convert = (events: LedgerEvent[]) =>
        query.format === 'cloudevents'
          ? toCloudEvents(events, customer, `moat/${tenantId}`)
          : query.format === 'stripe'
            ? toStripeMeterEvents(events, customer, now)
            : toLagoEvents(events, customer)
      const body = streamText(async function* () {
        const skipped = []
        let first = true
        yield '{"object":"list","data":['
        for await (const page of pages) {
          const converted = convert(page)
          skipped.push(...converted.skipped)
          for (const event of converted.events) {
            yield `${first ? '' : ','}${JSON.stringify(event)}`
            first = false
          }
        }
        yield `],"skipped":${JSON.stringify(skipped)}}`
      })
      return new Response(body, { headers: { 'content-type': 'application/json' } }) as never
    })
    .openapi(correct, async (c) => {
      const body = c.req.valid('json')
      const auth = c.get('auth')
      const base = await buildUsageEvent(
        { tenantId: auth.tenantId, keyId: body.key_id ?? null, requestId: c.get('requestId'), meter: body.meter as MeterName, value: body.value },
        body.timestamp === undefined ? Date.now() : body.timestamp * 1000,
      )
      await recordUsage(c.env, { events: [{ ...base, kind: 'correction', reason: body.reason }], observations: [] })
      return c.json({ id: base.id, meter: base.meter, value: base.value, timestamp: Math.floor(base.timestamp / 1000), kind: 'correction' as const, reason: body.reason }, 201)
    })
}

function streamText(produce: () => AsyncGenerator<string>): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder()
  const iterator = produce()
  return new ReadableStream({
    async pull(controller) {
      const next = await iterator.next()
      if (next.done) controller.close()
      else controller.enqueue(encoder.encode(next.value))
    },
    async cancel() {
      await iterator.return(undefined)
    },
  })
}
