import type { Env } from '../env.ts'
import { consumeJobBatch } from '../jobs/dispatch-jobs.ts'
import { consumeJobDeadLetters, consumeOtherDeadLetters } from './consume-dead-letters.ts'
import { consumeUsageDeadLetters } from './consume-usage-dead-letters.ts'
import { consumeResultBatch } from './consume-results.ts'
import { consumeUsageBatch } from './consume-usage.ts'
import { QUEUE_NAMES } from './queue-names.ts'
import { consumeWebhookBatch, consumeWebhookDeadLetters } from '../webhooks/deliver-webhook.ts'
import { consumeSinkBatch, consumeSinkDeadLetters } from '../billing/sink-deliveries.ts'

const consumers: Record<string, (batch: MessageBatch<unknown>, env: Env) => Promise<void>> = {
  [QUEUE_NAMES.jobs]: consumeJobBatch,
  [QUEUE_NAMES.results]: consumeResultBatch,
  [QUEUE_NAMES.usage]: consumeUsageBatch,
  [QUEUE_NAMES.webhooks]: consumeWebhookBatch,
  [QUEUE_NAMES.webhooksDeadLetters]: consumeWebhookDeadLetters,
  [QUEUE_NAMES.sinks]: consumeSinkBatch,
  [QUEUE_NAMES.sinksDeadLetters]: consumeSinkDeadLetters,
  [QUEUE_NAMES.jobsDeadLetters]: consumeJobDeadLetters,
  [QUEUE_NAMES.resultsDeadLetters]: consumeOtherDeadLetters,
  [QUEUE_NAMES.usageDeadLetters]: consumeUsageDeadLetters,
}

export async function consumeQueue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const consumer = consumers[batch.queue]
  if (!consumer) throw new Error(`no consumer for queue '${batch.queue}'`)
  await consumer(batch, env)
}
