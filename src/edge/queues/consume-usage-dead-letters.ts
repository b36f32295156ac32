import type { Env } from '../env.ts'
import { replayUsageDeadLetters } from '../usage/replay-usage-dead-letters.ts'
import { recordDeadLetter } from './dead-letters.ts'

// `moat-usage-dlq`: served requests whose usage never reached the ledger. Kept
// first, then written to the ledger; once kept, a failure to write is left to
// the cron sweep's replay rather than to this queue's retries.
export async function consumeUsageDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) await recordDeadLetter(env, batch.queue, message)
  batch.ackAll()
  await replayUsageDeadLetters(env).catch((error: unknown) =>
    console.error(JSON.stringify({ level: 'error', queue: batch.queue, message: `replaying usage dead letters failed: ${String(error)}` })),
  )
}
