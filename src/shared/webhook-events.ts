// The events Moat delivers to webhooks. A subscription names an event type,
// a family (`job.*`) or everything (`*`).
export const WEBHOOK_EVENT_TYPES = [
  'job.succeeded',
  'job.failed',
  'job.cancelled',
  'usage.quota_exceeded',
  'usage.sink_failed',
  // A served model version's predictions drifted from its reference window.
  'model.drift',
  // A client's guard action escalated (degrade, throttle, block) or an admin
  // reset it.
  'guard.alert',
  'guard.reset',
] as const
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number]

// Families that later capabilities emit into (guard.*, model.*) can be
// subscribed to now.
export const WEBHOOK_EVENT_FAMILIES = ['job', 'usage', 'guard', 'model'] as const

export function isValidSubscription(pattern: string): boolean {
  if (pattern === '*') return true
  if (pattern.endsWith('.*')) return (WEBHOOK_EVENT_FAMILIES as readonly string[]).includes(pattern.slice(0, -2))
  return (WEBHOOK_EVENT_TYPES as readonly string[]).includes(pattern)
}

export function subscribes(patterns: readonly string[], type: string): boolean {
  return patterns.some((pattern) => pattern === '*' || pattern === type || (pattern.endsWith('.*') && type.startsWith(pattern.slice(0, -1))))
}
