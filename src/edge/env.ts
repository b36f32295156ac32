import type { UsageQuota } from './billing/usage-quota.ts'
import type { ModelMonitor } from './inference/model-monitor.ts'
import type { ClientGuard } from './guard/client-guard.ts'

export type QueueMessages = {
  JOBS: import('./jobs/job-messages.ts').JobQueueMessage
  RESULTS: import('./jobs/job-messages.ts').ResultQueueMessage
  USAGE: import('../shared/usage-event.ts').UsageEvent
  WEBHOOKS: { delivery_id: string }
  SINKS: { delivery_id: string }
}

export interface Env {
  DB: D1Database
  ARTIFACTS: R2Bucket
  JOBS: Queue<QueueMessages['JOBS']>
  RESULTS: Queue<QueueMessages['RESULTS']>
  USAGE: Queue<QueueMessages['USAGE']>
  WEBHOOKS: Queue<QueueMessages['WEBHOOKS']>
  SINKS: Queue<QueueMessages['SINKS']>
  CLIENT_GUARD: DurableObjectNamespace<ClientGuard>
  USAGE_QUOTA: DurableObjectNamespace<UsageQuota>
  MODEL_MONITOR: DurableObjectNamespace<ModelMonitor>
  MOAT_ADMIN_TOKEN?: string
  MOAT_RUNNER_SECRET?: string
  MOAT_SECRETS_KEY?: string
  MOAT_OUTBOUND_ALLOW_HOSTS?: string
  MOAT_OUTBOUND_ALLOW_LOOPBACK?: string
  MOAT_CHAOS_USAGE_FAILURE_RATE?: string
  MOAT_MAX_JSON_BYTES?: string
  MOAT_MAX_ARTIFACT_BYTES?: string
  MOAT_RUNNER_TTL_SECONDS?: string
  MOAT_RUNNER_TIMEOUT_MS?: string
  MOAT_SSE_POLL_MS?: string
  MOAT_INFERENCE_TIMEOUT_MS?: string
  MOAT_PREDICT_MAX_ROWS?: string
  MOAT_MONITOR_WINDOW_SECONDS?: string
  MOAT_DRIFT_PSI_THRESHOLD?: string
}

export type AuthContext = {
  tenantId: string
  keyId: string
  scopes: readonly string[]
  // The tenant's usage limits, read with the key (empty: unlimited).
  limits: readonly import('../shared/billing/quota-period.ts').QuotaLimit[]
}

export type AppEnv = {
  Bindings: Env
  Variables: {
    requestId: string
    auth: AuthContext
    idempotentReplay: boolean
    usage: import('./usage/request-usage.ts').UsageCollector
  }
}
