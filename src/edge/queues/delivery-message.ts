// The body of a `moat-webhooks` or `moat-sinks` message: the id of the
// delivery row it stands for; null for anything else (kept as a dead letter).
export function deliveryIdOf(message: Message<unknown>): string | null {
  const id = (message.body as { delivery_id?: unknown } | null)?.delivery_id
  return typeof id === 'string' ? id : null
}
