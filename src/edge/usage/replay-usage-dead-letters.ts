import type { RequestObservation } from '../../shared/traffic/request-observation.ts'
import type { UsageEvent } from '../../shared/usage-event.ts'
import { readUsageMessage } from '../../shared/usage-message.ts'
import type { Env } from '../env.ts'
import { QUEUE_NAMES } from '../queues/queue-names.ts'
import { recordUsage } from './record-usage.ts'

export type ReplayOptions = { limit?: number; now?: number }

// A usage message reaches `moat-usage-dlq` only after its batch failed every
// retry (D1 unavailable for that long, or a bug): it is still a request that
// was served and must be billed. The dead-letter consumer keeps it in
// `dead_letters`, then writes it to the ledger; whatever cannot be written now
// the cron sweep tries again. Insert-or-ignore by event id keeps a replay of
// an event that did reach the ledger from counting twice. Answers how many
// dead letters were replayed.
export async function replayUsageDeadLetters(env: Pick<Env, 'DB'>, options: ReplayOptions = {}): Promise<number> {
  const { results } = await env.DB.prepare(
    `SELECT id, body FROM dead_letters WHERE queue = ?1 AND replayed_at IS NULL ORDER BY created_at LIMIT ?2`,
  )
    .bind(QUEUE_NAMES.usageDeadLetters, options.limit ?? 500)
    .all<{ id: string; body: string }>()
  const events: UsageEvent[] = []
  const observations: RequestObservation[] = []
  const replayed: string[] = []
  for (const row of results) {
    let body: unknown
    try {
      body = JSON.parse(row.body)
    } catch {
      continue
    }
    // A body that is no usage message stays for an operator, as it always did.
    const contents = readUsageMessage(body)
    if (!contents) continue
    events.push(...contents.events)
    observations.push(...contents.observations)
    replayed.push(row.id)
  }
  if (replayed.length === 0) return 0
  const now = options.now ?? Date.now()
  // Marked replayed in the same transaction as what they hold is written.
  const marks = replayed.map((id) => env.DB.prepare('UPDATE dead_letters SET replayed_at = ?2 WHERE id = ?1').bind(id, now))
  await recordUsage(env, { events, observations }, marks)
  return replayed.length
}
