import type { Env } from '../env.ts'
import { jobQueueMessageSchema } from '../jobs/job-messages.ts'
import { failJob } from '../jobs/job-transitions.ts'
import { recordDeadLetter } from './dead-letters.ts'

// `moat-jobs-dlq`: no runner took the job within the queue's retries. The job
// fails with the last dispatch error, and the message is kept.
export async function consumeJobDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    await recordDeadLetter(env, batch.queue, message)
    const parsed = jobQueueMessageSchema.safeParse(message.body)
    if (parsed.success) {
      const job = await env.DB.prepare('SELECT last_dispatch_error FROM jobs WHERE id = ?1')
        .bind(parsed.data.job_id)
        .first<{ last_dispatch_error: string | null }>()
      await failJob(env, {
        jobId: parsed.data.job_id,
        attempt: null,
        code: 'dispatch_failed',
        message: `No runner accepted the job after ${message.attempts} attempts: ${job?.last_dispatch_error ?? 'unknown reason'}`,
      })
    }
    message.ack()
  }
}

// `moat-results-dlq` and `moat-usage-dlq`: kept in `dead_letters` for an operator.
export async function consumeOtherDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) await recordDeadLetter(env, batch.queue, message)
  batch.ackAll()
}
