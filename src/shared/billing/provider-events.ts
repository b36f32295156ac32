import { METERS, type MeterName } from '../meters.ts'

// Ledger events in the shapes billing providers ingest. Each provider's rules
// are checked here, and an event a provider would refuse is returned as
// skipped with its reason, never silently dropped.

export type LedgerEvent = {
  id: string
  tenant_id: string
  key_id: string | null
  meter: string
  value: number
  timestamp: number
  request_id: string
  kind: 'usage' | 'correction'
  reason: string | null
}

export type Skipped = { id: string; reason: string }
export type Conversion<T> = { events: T[]; skipped: Skipped[] }

export const STRIPE_WINDOW_MS = 35 * 24 * 60 * 60 * 1000
export const STRIPE_FUTURE_MS = 5 * 60 * 1000
export const STRIPE_IDENTIFIER_MAX = 100

// CloudEvents 1.0, as OpenMeter ingests them: type = meter, subject = customer.
export type CloudEvent = {
  specversion: '1.0'
  id: string
  source: string
  type: string
  subject: string
  time: string
  datacontenttype: 'application/json'
  data: { value: number; unit: string; key_id: string | null; request_id: string; kind: string; reason?: string }
}

export function toCloudEvents(events: LedgerEvent[], customer: string, source: string): Conversion<CloudEvent> {
  return {
    events: events.map((event) => ({
      specversion: '1.0',
      id: event.id,
      source,
      type: event.meter,
      subject: customer,
      time: new Date(event.timestamp).toISOString(),
      datacontenttype: 'application/json',
      data: {
        value: event.value,
        unit: METERS[event.meter as MeterName]?.unit ?? 'unit',
        key_id: event.key_id,
        request_id: event.request_id,
        kind: event.kind,
        ...(event.reason ? { reason: event.reason } : {}),
      },
    })),
    skipped: [],
  }
}

// Stripe meter events: `identifier` makes a resend idempotent, `value` is a
// whole number in a string, `timestamp` in seconds within the past 35 days
// (or 5 minutes ahead). Stripe takes no negative values: a negative
// correction has to be made there with a meter event adjustment.
export type StripeMeterEvent = {
  event_name: string
  identifier: string
  timestamp: number
  payload: { stripe_customer_id: string; value: string }
}

export function toStripeMeterEvents(events: LedgerEvent[], customer: string, now: number): Conversion<StripeMeterEvent> {
  const converted: StripeMeterEvent[] = []
  const skipped: Skipped[] = []
  for (const event of events) {
    if (event.timestamp < now - STRIPE_WINDOW_MS) skipped.push({ id: event.id, reason: 'older than Stripe’s 35-day window' })
    else if (event.timestamp > now + STRIPE_FUTURE_MS) skipped.push({ id: event.id, reason: 'more than 5 minutes in the future' })
    else if (event.value < 0) skipped.push({ id: event.id, reason: 'negative value: Stripe needs a meter event adjustment' })
    else
      converted.push({
        event_name: event.meter,
        identifier: event.id.slice(0, STRIPE_IDENTIFIER_MAX),
        timestamp: Math.floor(event.timestamp / 1000),
        payload: { stripe_customer_id: customer, value: String(event.value) },
      })
  }
  return { events: converted, skipped }
}

// Lago events: `transaction_id` makes a resend idempotent; `code` is the
// billable metric's code; the value travels in `properties`.
export type LagoEvent = {
  transaction_id: string
  external_subscription_id: string
  code: string
  timestamp: number
  properties: { value: number; key_id: string | null }
}

export function toLagoEvents(events: LedgerEvent[], subscription: string): Conversion<LagoEvent> {
  return {
    events: events.map((event) => ({
      transaction_id: event.id,
      external_subscription_id: subscription,
      code: event.meter,
      timestamp: Math.floor(event.timestamp / 1000),
      properties: { value: event.value, key_id: event.key_id },
    })),
    skipped: [],
  }
}

const CSV_COLUMNS = ['id', 'timestamp', 'tenant_id', 'key_id', 'meter', 'unit', 'value', 'request_id', 'kind', 'reason'] as const

function csvField(value: string | number | null): string {
  const text = value === null ? '' : String(value)
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

export const CSV_HEADER = `${CSV_COLUMNS.join(',')}\r\n`

// One RFC 4180 line per event, the timestamp in ISO 8601.
export function toCsvLine(event: LedgerEvent): string {
  const unit = METERS[event.meter as MeterName]?.unit ?? ''
  const row = [event.id, new Date(event.timestamp).toISOString(), event.tenant_id, event.key_id, event.meter, unit, event.value, event.request_id, event.kind, event.reason]
  return `${row.map(csvField).join(',')}\r\n`
}
