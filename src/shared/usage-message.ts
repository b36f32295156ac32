import { z } from 'zod'
import { requestObservationSchema, type RequestObservation } from './traffic/request-observation.ts'
import { usageEventSchema, type UsageEvent } from './usage-event.ts'

// What travels on the usage queue. A request's usage goes as one message —
// every event it metered and its observation — so a proxied chat costs one
// queue message, not four; events metered after the response (a stream's
// tokens, a job's runner time) and older messages go one at a time.
export const requestUsageSchema = z.strictObject({
  type: z.literal('request_usage'),
  events: z.array(usageEventSchema).max(64),
  observation: requestObservationSchema.nullable(),
})
export type RequestUsage = z.infer<typeof requestUsageSchema>

export type UsageMessageContents = { events: UsageEvent[]; observations: RequestObservation[] }

// Reads any usage-queue body; null when it is none of the three shapes (the
// consumer keeps such a message for an operator).
export function readUsageMessage(body: unknown): UsageMessageContents | null {
  const type = (body as { type?: unknown } | null)?.type
  if (type === 'request_usage') {
    const parsed = requestUsageSchema.safeParse(body)
    if (!parsed.success) return null
    return { events: parsed.data.events, observations: parsed.data.observation ? [parsed.data.observation] : [] }
  }
  if (type === 'request') {
    const parsed = requestObservationSchema.safeParse(body)
    return parsed.success ? { events: [], observations: [parsed.data] } : null
  }
  const parsed = usageEventSchema.safeParse(body)
  return parsed.success ? { events: [parsed.data], observations: [] } : null
}
