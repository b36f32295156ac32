import { createApp } from './app.ts'
import type { Env } from './env.ts'
import { consumeQueue } from './queues/consume.ts'
import { scheduledMaintenance } from './runners/sweep.ts'

export { UsageQuota } from './billing/usage-quota.ts'
export { ModelMonitor } from './inference/model-monitor.ts'
export { ClientGuard } from './guard/client-guard.ts'

const app = createApp()

export default {
  fetch: app.fetch,
  queue: (batch, env) => consumeQueue(batch, env),
  scheduled: (_controller, env, ctx) => ctx.waitUntil(scheduledMaintenance(env)),
} satisfies ExportedHandler<Env, unknown>
