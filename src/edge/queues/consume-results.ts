import { backoffSeconds } from '../../shared/backoff.ts'
import type { Env } from '../env.ts'
import { resultQueueMessageSchema } from '../jobs/job-messages.ts'
import { applyRunnerReport } from '../jobs/job-transitions.ts'
import { recordDeadLetter } from './dead-letters.ts'

// Consumer of `moat-results`: applies runner reports. Applying is idempotent
// (see job-transitions): a duplicate changes nothing, and a message retried
// after a failure finishes what the failed try left undone.
export async function consumeResultBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    const parsed = resultQueueMessageSchema.safeParse(message.body)
    if (!parsed.success) {
      await recordDeadLetter(env, batch.queue, message)
      message.ack()
      continue
    }
    try {
      await applyRunnerReport(env, parsed.data, message.attempts > 1)
      message.ack()
    } catch (error) {
      console.error(JSON.stringify({ level: 'error', queue: batch.queue, job_id: parsed.data.job_id, message: String(error) }))
      message.retry({ delaySeconds: backoffSeconds(message.attempts) })
    }
  }
}
