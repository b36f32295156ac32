import type { Env } from '../env.ts'
import { jobQueueMessageSchema } from '../jobs/job-messages.ts'
import { emitJobFinished } from '../jobs/job-events.ts'
import { failJob } from '../jobs/job-transitions.ts'
import { recordDeadLetter } from './dead-letters.ts'

// `moat-jobs-dlq`: no runner took the job within the queue's retries. The job
// fails with the last dispatch error, and the message is kept.
export async function consumeJobDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    const firstDelivery = await recordDeadLetter(env, batch.queue, message)
    const parsed = jobQueueMessageSchema.safeParse(message.body)
    if (parsed.success) {
      const job = await env.DB.prepare('SELECT status, error, last_dispatch_error FROM jobs WHERE id = ?1')
        .bind(parsed.data.job_id)
        .first<{ status: string; error: string | null; last_dispatch_error: string | null }>()
      const failed = await failJob(env, {
        jobId: parsed.data.job_id,
        attempt: null,
        code: 'dispatch_failed',
        message: `No runner accepted the job after ${message.attempts} attempts: ${job?.last_dispatch_error ?? 'unknown reason'}`,
      })
      // The same message again, after the consumer failed past the commit:
      // the job's event may never have been queued.
      if (!failed && !firstDelivery && job?.status === 'failed' && errorCode(job.error) === 'dispatch_failed') {
        await emitJobFinished(env, parsed.data.job_id, { requeueUntried: true })
      }
    }
    message.ack()
  }
}

function errorCode(error: string | null): string | undefined {
  return error ? (JSON.parse(error) as { code?: string }).code : undefined
}

// `moat-results-dlq`: kept in `dead_letters` for an operator (`moat-usage-dlq`
// has its own consumer: usage must still reach the ledger).
export async function consumeOtherDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) await recordDeadLetter(env, batch.queue, message)
  batch.ackAll()
}
