import type { RequestObservation } from '../../shared/traffic/request-observation.ts'
import type { Env } from '../env.ts'
import { observationStatements } from './record-observations.ts'
import { usageEventStatements, type LedgerEntry } from './usage-event-statements.ts'

// Usage events and request observations, and whatever else must be written
// with them (`alongside`: a replay's marks on its dead letters), in one D1
// batch: one round trip and one transaction, so either all of it is written
// or none is. Every insert is insert-or-ignore by id, so writing it again
// (a redelivery, a retry) counts nothing twice.
export async function recordUsage(
  env: Pick<Env, 'DB'>,
  contents: { events: readonly LedgerEntry[]; observations: readonly RequestObservation[] },
  alongside: readonly D1PreparedStatement[] = [],
): Promise<void> {
  const statements = [...usageEventStatements(env.DB, contents.events), ...observationStatements(env.DB, contents.observations), ...alongside]
  if (statements.length === 0) return
  await env.DB.batch(statements)
}
