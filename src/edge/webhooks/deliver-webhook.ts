import { backoffSeconds } from '../../shared/backoff.ts'
import { checkOutboundUrl } from '../../shared/outbound-url.ts'
import { webhookHeaders } from '../../shared/standard-webhooks.ts'
import type { Env } from '../env.ts'
import { recordDeadLetter } from '../queues/dead-letters.ts'
import { deliveryIdOf } from '../queues/delivery-message.ts'
import { secretBox } from '../secrets.ts'
import { readSettings } from '../settings.ts'

const DELIVERY_TIMEOUT_MS = 10_000
// Standard Webhooks' receivers answer quickly; retries back off from 5 s to an hour.
const WEBHOOK_BACKOFF = { baseSeconds: 5, maxSeconds: 3600 }

type Delivery = {
  id: string
  webhook_id: string
  event_id: string
  payload: string
  status: string
  url: string | null
  sealed_secret: string | null
  deleted_at: number | null
}

type Outcome = { kind: 'done' } | { kind: 'retry'; error: string }

async function attempt(env: Env, deliveryId: string): Promise<Outcome> {
  const delivery = await env.DB.prepare(
    `SELECT d.id, d.webhook_id, d.event_id, d.payload, d.status, w.url, w.sealed_secret, w.deleted_at
      FROM webhook_deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = ?1`,
  )
    .bind(deliveryId)
    .first<Delivery>()
  if (!delivery || delivery.status !== 'pending') return { kind: 'done' }
  const finish = (status: 'delivered' | 'failed', lastStatus: number | null, error: string | null) =>
    env.DB.prepare(
      `UPDATE webhook_deliveries SET status = ?2, attempts = attempts + 1, last_status = ?3, last_error = ?4,
          delivered_at = CASE WHEN ?2 = 'delivered' THEN ?5 ELSE delivered_at END
        WHERE id = ?1 AND status = 'pending'`,
    )
      .bind(delivery.id, status, lastStatus, error, Date.now())
      .run()
  if (!delivery.url || !delivery.sealed_secret || delivery.deleted_at !== null) {
    await finish('failed', null, 'the webhook was deleted')
    return { kind: 'done' }
  }
  // Checked again at delivery: the operator's policy may have changed since.
  const check = checkOutboundUrl(delivery.url, readSettings(env).outbound)
  if (!check.ok) {
    await finish('failed', null, `refused URL: ${check.reason}`)
    return { kind: 'done' }
  }
  const secret = await (await secretBox(env)).open(delivery.sealed_secret, `webhook:${delivery.webhook_id}`)
  const headers = await webhookHeaders(secret, delivery.event_id, delivery.payload)
  let status: number | null = null
  let error: string
  try {
    const response = await fetch(check.url, {
      method: 'POST',
      headers: { ...headers, 'user-agent': 'Moat-Webhooks/1' },
      body: delivery.payload,
      signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
      redirect: 'manual',
    })
    status = response.status
    await response.body?.cancel()
    if (status >= 200 && status < 300) {
      await finish('delivered', status, null)
      return { kind: 'done' }
    }
    error = `endpoint answered ${status}`
  } catch (cause) {
    error = cause instanceof Error ? cause.message : String(cause)
  }
  await env.DB.prepare(`UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?2, last_error = ?3 WHERE id = ?1`)
    .bind(delivery.id, status, error)
    .run()
  return { kind: 'retry', error }
}

// Consumer of `moat-webhooks`: one delivery per message, retried with
// exponential backoff; after the queue's retries, `moat-webhooks-dlq` marks
// it failed (it stays in the log and can be redelivered by hand).
export async function consumeWebhookBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    const deliveryId = deliveryIdOf(message)
    if (deliveryId === null) {
      await recordDeadLetter(env, batch.queue, message)
      message.ack()
      continue
    }
    try {
      const outcome = await attempt(env, deliveryId)
      if (outcome.kind === 'retry') message.retry({ delaySeconds: backoffSeconds(message.attempts, WEBHOOK_BACKOFF) })
      else message.ack()
    } catch (error) {
      console.error(JSON.stringify({ level: 'error', queue: batch.queue, delivery_id: deliveryId, message: String(error) }))
      // Counted, so the cron sweep knows this delivery's message is alive.
      await env.DB.prepare(`UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1 AND status = 'pending'`)
        .bind(deliveryId, String(error))
        .run()
        .catch(() => {})
      message.retry({ delaySeconds: backoffSeconds(message.attempts, WEBHOOK_BACKOFF) })
    }
  }
}

// A pending delivery never tried after this long lost its queue message (an
// emitter that failed between writing it and queueing it, and was not
// retried: an API request, a Durable Object): it is queued again. One that was
// tried has its message in the queue's retries.
const UNTRIED_DELIVERY_MS = 10 * 60 * 1000

export async function resendUntriedWebhookDeliveries(env: Env, now = Date.now()): Promise<void> {
  const { results } = await env.DB.prepare(
    `SELECT id FROM webhook_deliveries WHERE status = 'pending' AND attempts = 0 AND created_at < ?1 LIMIT 100`,
  )
    .bind(now - UNTRIED_DELIVERY_MS)
    .all<{ id: string }>()
  for (const row of results) await env.WEBHOOKS.send({ delivery_id: row.id })
}

export async function consumeWebhookDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    const deliveryId = deliveryIdOf(message)
    if (deliveryId !== null) {
      await env.DB.prepare(
        `UPDATE webhook_deliveries SET status = 'failed', last_error = COALESCE(last_error, 'retries exhausted') WHERE id = ?1 AND status = 'pending'`,
      )
        .bind(deliveryId)
        .run()
    } else {
      await recordDeadLetter(env, batch.queue, message)
    }
    message.ack()
  }
}
