import { requestObservationSchema, type RequestObservation } from '../../shared/traffic/request-observation.ts'
import { usageEventSchema, type UsageEvent } from '../../shared/usage-event.ts'
import type { Env } from '../env.ts'
import { recordUsageEvents } from '../usage/meter-usage.ts'
import { recordObservations } from '../usage/record-observations.ts'
import { drainSinkOutbox } from '../billing/sink-deliveries.ts'
import { readSettings } from '../settings.ts'
import { recordDeadLetter } from './dead-letters.ts'

// Consumer of `moat-usage`: one batched insert-or-ignore for the whole batch.
// If it fails the whole batch is retried; event ids make the retry exact.
// New events reach billing sinks through the outbox their trigger fills.
// Request observations (the dashboard's outcomes and latencies) share the
// queue but never the ledger: each message is one or the other by its shape.
export async function consumeUsageBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const events: UsageEvent[] = []
  const observations: RequestObservation[] = []
  for (const message of batch.messages) {
    const isObservation = (message.body as { type?: unknown } | null)?.type === 'request'
    const parsed = isObservation ? requestObservationSchema.safeParse(message.body) : usageEventSchema.safeParse(message.body)
    if (!parsed.success) await recordDeadLetter(env, batch.queue, message)
    else if (isObservation) observations.push(parsed.data as RequestObservation)
    else events.push(parsed.data as UsageEvent)
  }
  await recordUsageEvents(env, events)
  await recordObservations(env, observations)
  const firstDelivery = batch.messages.every((message) => message.attempts === 1)
  if (firstDelivery && Math.random() < readSettings(env).chaosUsageFailureRate) {
    throw new Error('chaos: the usage consumer crashed after writing, before acknowledging')
  }
  batch.ackAll()
  // The events are safe in the ledger and the outbox; if draining fails here,
  // the cron sweep drains later.
  await drainSinkOutbox(env).catch((error: unknown) =>
    console.error(JSON.stringify({ level: 'error', queue: batch.queue, message: `draining the sink outbox failed: ${String(error)}` })),
  )
}
