import { backoffSeconds } from '../../shared/backoff.ts'
import type { LedgerEvent } from '../../shared/billing/provider-events.ts'
import { createId } from '../../shared/ids.ts'
import { checkOutboundUrl } from '../../shared/outbound-url.ts'
import type { Env } from '../env.ts'
import { recordDeadLetter } from '../queues/dead-letters.ts'
import { deliveryIdOf } from '../queues/delivery-message.ts'
import { secretBox } from '../secrets.ts'
import { readSettings } from '../settings.ts'
import { emitEvent, eventId } from '../webhooks/emit-event.ts'
import { sendToSink, type SinkProvider } from './sink-providers.ts'

export const SINK_BATCH_SIZE = 100
const SINK_BACKOFF = { baseSeconds: 5, maxSeconds: 1800 }
// A pending delivery never tried after this long lost its queue message (a
// send that failed after the drain committed): it is sent again.
const STALE_DELIVERY_MS = 10 * 60 * 1000

// Groups outbox rows into deliveries of at most 100 events and queues them.
// Claiming the rows and writing the delivery are one batch (one transaction),
// so a crash leaves either both or neither.
export async function drainSinkOutbox(env: Env, now = Date.now()): Promise<number> {
  const { results: sinks } = await env.DB.prepare(`SELECT DISTINCT sink_id FROM sink_outbox WHERE delivery_id IS NULL LIMIT 100`).all<{
    sink_id: string
  }>()
  let deliveries = 0
  for (const { sink_id: sinkId } of sinks) {
    for (;;) {
      const deliveryId = createId('sd', now)
      const [claimed] = await env.DB.batch<{ event_id: string }>([
        env.DB.prepare(
          `UPDATE sink_outbox SET delivery_id = ?1
            WHERE rowid IN (SELECT rowid FROM sink_outbox WHERE sink_id = ?2 AND delivery_id IS NULL ORDER BY created_at, event_id LIMIT ?3)
            RETURNING event_id`,
        ).bind(deliveryId, sinkId, SINK_BATCH_SIZE),
        env.DB.prepare(
          `INSERT INTO sink_deliveries (id, sink_id, tenant_id, event_ids, status, attempts, sent, created_at)
            SELECT ?1, s.id, s.tenant_id, (SELECT json_group_array(event_id) FROM sink_outbox WHERE delivery_id = ?1), 'pending', 0, 0, ?3
              FROM billing_sinks s WHERE s.id = ?2 AND EXISTS (SELECT 1 FROM sink_outbox WHERE delivery_id = ?1)`,
        ).bind(deliveryId, sinkId, now),
      ])
      if (!claimed || claimed.results.length === 0) break
      await env.SINKS.send({ delivery_id: deliveryId })
      deliveries++
      if (claimed.results.length < SINK_BATCH_SIZE) break
    }
  }
  return deliveries
}

// Only deliveries never tried: one that was tried has its message in the
// queue's retries (and the dead-letter queue after them), and sending it again
// every minute would multiply the retries against a failing provider.
export async function resendStaleSinkDeliveries(env: Env, now = Date.now()): Promise<void> {
  const { results } = await env.DB.prepare(`SELECT id FROM sink_deliveries WHERE status = 'pending' AND attempts = 0 AND created_at < ?1 LIMIT 100`)
    .bind(now - STALE_DELIVERY_MS)
    .all<{ id: string }>()
  for (const row of results) await env.SINKS.send({ delivery_id: row.id })
}

type DeliveryRow = {
  id: string
  sink_id: string
  tenant_id: string
  event_ids: string
  status: string
  provider: SinkProvider
  url: string
  customer: string
  sealed_credential: string
  deleted_at: number | null
}

async function deliver(env: Env, deliveryId: string): Promise<'done' | 'retry'> {
  const delivery = await env.DB.prepare(
    `SELECT d.id, d.sink_id, d.tenant_id, d.event_ids, d.status, s.provider, s.url, s.customer, s.sealed_credential, s.deleted_at
      FROM sink_deliveries d JOIN billing_sinks s ON s.id = d.sink_id WHERE d.id = ?1`,
  )
    .bind(deliveryId)
    .first<DeliveryRow>()
  if (!delivery || delivery.status !== 'pending') return 'done'
  const fail = (error: string) =>
    env.DB.prepare(`UPDATE sink_deliveries SET status = 'failed', last_error = ?2 WHERE id = ?1 AND status = 'pending'`).bind(delivery.id, error).run()
  if (delivery.deleted_at !== null) {
    await fail('the sink was deleted')
    return 'done'
  }
  const check = checkOutboundUrl(delivery.url, readSettings(env).outbound)
  if (!check.ok) {
    await fail(`refused URL: ${check.reason}`)
    return 'done'
  }
  const { results: events } = await env.DB.prepare(
    `SELECT id, tenant_id, key_id, meter, value, timestamp, request_id, kind, reason FROM usage_events
      WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY timestamp, id`,
  )
    .bind(delivery.event_ids)
    .all<LedgerEvent>()
  const credential = await (await secretBox(env)).open(delivery.sealed_credential, `sink:${delivery.sink_id}`)
  try {
    const result = await sendToSink({ provider: delivery.provider, url: check.url, credential, customer: delivery.customer, tenantId: delivery.tenant_id }, events)
    await env.DB.prepare(
      `UPDATE sink_deliveries SET status = 'delivered', attempts = attempts + 1, sent = ?2, skipped = ?3, last_error = NULL, delivered_at = ?4
        WHERE id = ?1 AND status = 'pending'`,
    )
      .bind(delivery.id, result.sent, JSON.stringify(result.skipped), Date.now())
      .run()
    return 'done'
  } catch (error) {
    await env.DB.prepare(`UPDATE sink_deliveries SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1`)
      .bind(delivery.id, error instanceof Error ? error.message : String(error))
      .run()
    return 'retry'
  }
}

// Consumer of `moat-sinks`.
export async function consumeSinkBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    const deliveryId = deliveryIdOf(message)
    if (deliveryId === null) {
      await recordDeadLetter(env, batch.queue, message)
      message.ack()
      continue
    }
    const outcome = await deliver(env, deliveryId).catch(async (error: unknown) => {
      console.error(JSON.stringify({ level: 'error', queue: batch.queue, delivery_id: deliveryId, message: String(error) }))
      // Counted, so the cron sweep knows this delivery's message is alive.
      await env.DB.prepare(`UPDATE sink_deliveries SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1 AND status = 'pending'`)
        .bind(deliveryId, String(error))
        .run()
        .catch(() => {})
      return 'retry' as const
    })
    if (outcome === 'retry') message.retry({ delaySeconds: backoffSeconds(message.attempts, SINK_BACKOFF) })
    else message.ack()
  }
}

// `moat-sinks-dlq`: the provider kept refusing. The delivery is marked failed
// (its events stay in the ledger and in the delivery) and the tenant hears of
// it through a `usage.sink_failed` event. A message that comes back after the
// consumer failed finds the delivery already failed and emits the event again
// (once per delivery: its id is the delivery's).
export async function consumeSinkDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    const deliveryId = deliveryIdOf(message)
    if (deliveryId === null) {
      await recordDeadLetter(env, batch.queue, message)
      message.ack()
      continue
    }
    type Failed = { id: string; sink_id: string; tenant_id: string; last_error: string; event_ids: string }
    const justFailed = await env.DB.prepare(
      `UPDATE sink_deliveries SET status = 'failed', last_error = COALESCE(last_error, 'retries exhausted')
        WHERE id = ?1 AND status = 'pending' RETURNING id, sink_id, tenant_id, last_error, event_ids`,
    )
      .bind(deliveryId)
      .first<Failed>()
    const failed =
      justFailed ??
      (await env.DB.prepare(`SELECT id, sink_id, tenant_id, last_error, event_ids FROM sink_deliveries WHERE id = ?1 AND status = 'failed'`)
        .bind(deliveryId)
        .first<Failed>())
    if (failed) {
      await emitEvent(
        env,
        {
          id: await eventId(failed.id, 'failed'),
          tenantId: failed.tenant_id,
          type: 'usage.sink_failed',
          data: { sink_id: failed.sink_id, delivery_id: failed.id, events: JSON.parse(failed.event_ids).length, error: failed.last_error },
        },
        { requeueUntried: justFailed === null },
      )
    }
    message.ack()
  }
}
