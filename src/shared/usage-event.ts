import { z } from 'zod'
import { sha256Hex } from './encoding.ts'
import { isMeterName, type MeterName } from './meters.ts'

// One billable unit. Its id is derived from the request id and the meter, so
// the same unit sent twice (a queue redelivery, a retried send) is stored once.
export const usageEventSchema = z.strictObject({
  id: z.string().regex(/^ue_[0-9a-f]{32}$/),
  tenant_id: z.string().min(1),
  key_id: z.string().nullable(),
  meter: z.string().refine(isMeterName, 'not a registered meter'),
  value: z.number().int(),
  timestamp: z.number().int().nonnegative(),
  request_id: z.string().min(1),
})
export type UsageEvent = z.infer<typeof usageEventSchema>

export async function usageEventId(requestId: string, meter: string): Promise<string> {
  return `ue_${(await sha256Hex(`${requestId}\n${meter}`)).slice(0, 32)}`
}

export type MeterInput = { tenantId: string; keyId: string | null; requestId: string; meter: MeterName; value: number }

export async function buildUsageEvent(input: MeterInput, now = Date.now()): Promise<UsageEvent> {
  return {
    id: await usageEventId(input.requestId, input.meter),
    tenant_id: input.tenantId,
    key_id: input.keyId,
    meter: input.meter,
    value: input.value,
    timestamp: now,
    request_id: input.requestId,
  }
}
