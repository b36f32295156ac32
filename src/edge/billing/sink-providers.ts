import {
  toCloudEvents,
  toLagoEvents,
  toStripeMeterEvents,
  type LedgerEvent,
  type Skipped,
} from '../../shared/billing/provider-events.ts'

export const SINK_PROVIDERS = ['stripe', 'openmeter', 'lago'] as const
export type SinkProvider = (typeof SINK_PROVIDERS)[number]

export type SinkTarget = { provider: SinkProvider; url: URL; credential: string; customer: string; tenantId: string }
export type SendResult = { sent: number; skipped: Skipped[] }

const TIMEOUT_MS = 15_000

async function ensureOk(response: Response, what: string): Promise<void> {
  if (response.ok) {
    await response.body?.cancel()
    return
  }
  const text = (await response.text().catch(() => '')).slice(0, 300)
  throw new Error(`${what} answered ${response.status}${text ? `: ${text}` : ''}`)
}

function endpoint(base: URL, path: string): URL {
  return new URL(`${base.pathname.replace(/\/$/, '')}${path}`, base)
}

// Each provider's ingestion API, batch of at most 100 events:
// - Stripe: one form-encoded meter event per request (identifier and
//   Idempotency-Key make a resend harmless);
// - OpenMeter: one CloudEvents batch (ids deduplicate);
// - Lago: one events batch (transaction_id deduplicates).
export async function sendToSink(target: SinkTarget, events: LedgerEvent[], now = Date.now()): Promise<SendResult> {
  const auth = { authorization: `Bearer ${target.credential}` }
  if (target.provider === 'stripe') {
    const converted = toStripeMeterEvents(events, target.customer, now)
    for (const event of converted.events) {
      const form = new URLSearchParams({
        event_name: event.event_name,
        identifier: event.identifier,
        timestamp: String(event.timestamp),
        'payload[stripe_customer_id]': event.payload.stripe_customer_id,
        'payload[value]': event.payload.value,
      })
      const response = await fetch(endpoint(target.url, '/v1/billing/meter_events'), {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded', 'idempotency-key': event.identifier },
        body: form.toString(),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      })
      await ensureOk(response, 'Stripe')
    }
    return { sent: converted.events.length, skipped: converted.skipped }
  }
  const converted =
    target.provider === 'openmeter' ? toCloudEvents(events, target.customer, `moat/${target.tenantId}`) : toLagoEvents(events, target.customer)
  if (converted.events.length === 0) return { sent: 0, skipped: converted.skipped }
  const response =
    target.provider === 'openmeter'
      ? await fetch(endpoint(target.url, '/api/v1/events'), {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/cloudevents-batch+json' },
          body: JSON.stringify(converted.events),
          signal: AbortSignal.timeout(TIMEOUT_MS),
        })
      : await fetch(endpoint(target.url, '/api/v1/events/batch'), {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/json' },
          body: JSON.stringify({ events: converted.events }),
          signal: AbortSignal.timeout(TIMEOUT_MS),
        })
  await ensureOk(response, target.provider === 'openmeter' ? 'OpenMeter' : 'Lago')
  return { sent: converted.events.length, skipped: converted.skipped }
}
