import { usageEventSchema, type UsageEvent } from '../../shared/usage-event.ts'
import type { Env } from '../env.ts'
import { recordUsageEvents } from '../usage/meter-usage.ts'
import { recordDeadLetter } from './dead-letters.ts'

// Consumer of `moat-usage`: one batched insert-or-ignore for the whole batch.
// If it fails the whole batch is retried; event ids make the retry exact.
export async function consumeUsageBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const events: UsageEvent[] = []
  for (const message of batch.messages) {
    const parsed = usageEventSchema.safeParse(message.body)
    if (parsed.success) events.push(parsed.data)
    else await recordDeadLetter(env, batch.queue, message)
  }
  await recordUsageEvents(env, events)
  batch.ackAll()
}
