import type { RequestObservation } from '../../shared/traffic/request-observation.ts'
import type { UsageEvent } from '../../shared/usage-event.ts'
import { readUsageMessage } from '../../shared/usage-message.ts'
import type { Env } from '../env.ts'
import { recordUsage } from '../usage/record-usage.ts'
import { drainSinkOutbox } from '../billing/sink-deliveries.ts'
import { readSettings } from '../settings.ts'
import { recordDeadLetter } from './dead-letters.ts'

// Consumer of `moat-usage`: one batched insert-or-ignore for the whole batch,
// events and observations in one transaction.
// If it fails the whole batch is retried; event ids make the retry exact.
// New events reach billing sinks through the outbox their trigger fills.
// Request observations (the dashboard's outcomes and latencies) share the
// queue but never the ledger. A message is one event, one observation, or a
// request's whole usage (src/shared/usage-message.ts).
export async function consumeUsageBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const events: UsageEvent[] = []
  const observations: RequestObservation[] = []
  for (const message of batch.messages) {
    const contents = readUsageMessage(message.body)
    if (!contents) {
      await recordDeadLetter(env, batch.queue, message)
      continue
    }
    events.push(...contents.events)
    observations.push(...contents.observations)
  }
  await recordUsage(env, { events, observations })
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
