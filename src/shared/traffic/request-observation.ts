import { z } from 'zod'
import { LATENCY_BUCKETS, latencyBucket } from './latency-histogram.ts'

// What the edge observes about one authenticated request for the dashboard:
// its outcome and latency. It travels on the usage queue beside the usage
// events but is never a usage event: it has no meter, the consumer keeps it
// out of the ledger, and nothing bills it. Keyed by the request id, so a
// redelivery counts once.
export const OUTCOMES = ['served', 'client_error', 'refused', 'fault'] as const
export type Outcome = (typeof OUTCOMES)[number]

export const requestObservationSchema = z.strictObject({
  type: z.literal('request'),
  request_id: z.string().min(1),
  tenant_id: z.string().min(1),
  key_id: z.string().nullable(),
  outcome: z.enum(OUTCOMES),
  latency_bucket: z.number().int().min(0).max(LATENCY_BUCKETS - 1),
  timestamp: z.number().int().nonnegative(),
})
export type RequestObservation = z.infer<typeof requestObservationSchema>

// 429 is a refusal (a quota, a rate limit, a busy model); 5xx a fault; other
// 4xx the client's mistake; anything else was served.
export function outcomeOf(status: number): Outcome {
  if (status === 429) return 'refused'
  if (status >= 500) return 'fault'
  if (status >= 400) return 'client_error'
  return 'served'
}

export function observeRequest(input: {
  requestId: string
  tenantId: string
  keyId: string | null
  status: number
  latencyMs: number
  timestamp: number
}): RequestObservation {
  return {
    type: 'request',
    request_id: input.requestId,
    tenant_id: input.tenantId,
    key_id: input.keyId,
    outcome: outcomeOf(input.status),
    latency_bucket: latencyBucket(input.latencyMs),
    timestamp: input.timestamp,
  }
}
