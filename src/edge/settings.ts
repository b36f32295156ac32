import type { OutboundUrlPolicy } from '../shared/outbound-url.ts'
import type { Env } from './env.ts'

// Every edge setting with its default; wrangler.toml vars override them and the
// README lists them.
export type EdgeSettings = {
  maxJsonBytes: number
  maxArtifactBytes: number
  runnerTtlSeconds: number
  runnerTimeoutMs: number
  ssePollMs: number
  inferenceTimeoutMs: number
  predictMaxRows: number
  outbound: OutboundUrlPolicy
  // Fault injection for resilience tests: the share of usage batches whose
  // first delivery crashes after writing and before acknowledging (1: every
  // batch is written, crashes and is delivered again). Always 0 in production.
  chaosUsageFailureRate: number
}

function fraction(value: string | undefined): number {
  const parsed = Number(value)
  return Number.isFinite(parsed) && parsed > 0 && parsed <= 1 ? parsed : 0
}

function positiveInt(value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback
  const parsed = Number(value)
  return Number.isInteger(parsed) && parsed > 0 ? parsed : fallback
}

export function readSettings(env: Env): EdgeSettings {
  return {
    maxJsonBytes: positiveInt(env.MOAT_MAX_JSON_BYTES, 1024 * 1024),
    maxArtifactBytes: positiveInt(env.MOAT_MAX_ARTIFACT_BYTES, 90 * 1024 * 1024),
    runnerTtlSeconds: positiveInt(env.MOAT_RUNNER_TTL_SECONDS, 15),
    runnerTimeoutMs: positiveInt(env.MOAT_RUNNER_TIMEOUT_MS, 5000),
    ssePollMs: positiveInt(env.MOAT_SSE_POLL_MS, 1000),
    inferenceTimeoutMs: positiveInt(env.MOAT_INFERENCE_TIMEOUT_MS, 30_000),
    predictMaxRows: positiveInt(env.MOAT_PREDICT_MAX_ROWS, 256),
    outbound: {
      allowHosts: (env.MOAT_OUTBOUND_ALLOW_HOSTS ?? '').split(',').map((host) => host.trim()).filter(Boolean),
      allowLoopback: env.MOAT_OUTBOUND_ALLOW_LOOPBACK === 'true',
    },
    chaosUsageFailureRate: fraction(env.MOAT_CHAOS_USAGE_FAILURE_RATE),
  }
}
