import type { RequestObservation } from '../../shared/traffic/request-observation.ts'
import type { UsageEvent } from '../../shared/usage-event.ts'
import { readUsageMessage, type RequestUsage } from '../../shared/usage-message.ts'
import type { Env } from '../env.ts'
import { recordUsage } from './record-usage.ts'

// Sends usage off the critical path: one event, one observation, or a
// request's whole usage. If the queue refuses it, its contents go straight
// into D1: ids (the event's, the request's) make either path count them once.
export async function sendUsageMessage(env: Pick<Env, 'DB' | 'USAGE'>, message: UsageEvent | RequestObservation | RequestUsage): Promise<void> {
  try {
    // The binding is typed by single events; the consumer reads all three shapes.
    await (env.USAGE as Queue<unknown>).send(message)
  } catch (error) {
    const contents = readUsageMessage(message)
    if (!contents) throw error
    await recordUsage(env, contents)
  }
}
