import { sha256Hex } from '../../shared/encoding.ts'
import { subscribes } from '../../shared/webhook-events.ts'
import type { Env } from '../env.ts'

export type MoatEvent = {
  // Deterministic per occurrence (e.g. a job reaching a state), so emitting
  // the same occurrence twice delivers it once.
  id: string
  tenantId: string
  type: string
  data: Record<string, unknown>
  createdAt?: number
}

export async function eventId(...parts: string[]): Promise<string> {
  return `evt_${(await sha256Hex(parts.join('\n'))).slice(0, 32)}`
}

export type EmitOptions = {
  // The caller is retrying an emit that may have failed between writing a
  // delivery and queueing it: a delivery already written but never tried is
  // queued again, or the event would wait forever. Off for emitters that
  // emit the same event on purpose many times (one per refused request).
  requeueUntried?: boolean
}

// Writes one delivery per subscribed endpoint and queues them. Called after
// the change the event reports has been committed.
export async function emitEvent(env: Env, event: MoatEvent, options: EmitOptions = {}): Promise<number> {
  const { results } = await env.DB.prepare(`SELECT id, events FROM webhooks WHERE tenant_id = ?1 AND deleted_at IS NULL`)
    .bind(event.tenantId)
    .all<{ id: string; events: string }>()
  const targets = results.filter((hook) => subscribes(JSON.parse(hook.events) as string[], event.type))
  if (targets.length === 0) return 0
  const createdAt = event.createdAt ?? Date.now()
  const payload = JSON.stringify({ type: event.type, timestamp: new Date(createdAt).toISOString(), data: event.data })
  let queued = 0
  for (const hook of targets) {
    const deliveryId = `whd_${(await sha256Hex(`${event.id}\n${hook.id}`)).slice(0, 32)}`
    const inserted = await env.DB.prepare(
      `INSERT INTO webhook_deliveries (id, webhook_id, tenant_id, event_id, event_type, payload, status, created_at)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7) ON CONFLICT (id) DO NOTHING RETURNING id`,
    )
      .bind(deliveryId, hook.id, event.tenantId, event.id, event.type, payload, createdAt)
      .first()
    if (!inserted && !(options.requeueUntried && (await neverTried(env, deliveryId)))) continue
    await env.WEBHOOKS.send({ delivery_id: deliveryId })
    queued++
  }
  return queued
}

// A second message for a delivery that was queued after all is harmless: the
// consumer skips a delivery that is no longer pending.
async function neverTried(env: Env, deliveryId: string): Promise<boolean> {
  const row = await env.DB.prepare(`SELECT 1 AS pending FROM webhook_deliveries WHERE id = ?1 AND status = 'pending' AND attempts = 0`)
    .bind(deliveryId)
    .first()
  return row !== null
}
