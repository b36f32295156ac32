import type { Context, MiddlewareHandler } from 'hono'
import type { RequestObservation } from '../../shared/traffic/request-observation.ts'
import type { UsageEvent } from '../../shared/usage-event.ts'
import type { RequestUsage } from '../../shared/usage-message.ts'
import type { AppEnv, Env } from '../env.ts'
import { recordUsageEvents, sendUsageEvent } from './meter-usage.ts'
import { recordObservations, sendObservation } from './record-observations.ts'

// Gathers what a request meters and its observation while it runs, and sends
// them as one message on the usage queue after the response. Registered
// outermost on the metered paths, so that everything inside has added its
// part by the time it sends. After that (a stream still running) each event
// goes on its own.
export type UsageCollector = { events: UsageEvent[]; observation: RequestObservation | null; open: boolean }

export function collectRequestUsage(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const collector: UsageCollector = { events: [], observation: null, open: true }
    c.set('usage', collector)
    await next()
    collector.open = false
    if (collector.events.length === 0 && collector.observation === null) return
    c.executionCtx.waitUntil(sendRequestUsage(c.env, { type: 'request_usage', events: collector.events, observation: collector.observation }))
  }
}

function openCollector(c: Context<AppEnv>): UsageCollector | null {
  const collector = c.get('usage') as UsageCollector | undefined
  return collector?.open ? collector : null
}

export function addUsageEvent(c: Context<AppEnv>, event: UsageEvent): void {
  const collector = openCollector(c)
  if (collector) collector.events.push(event)
  else c.executionCtx.waitUntil(sendUsageEvent(c.env, event))
}

export function addObservation(c: Context<AppEnv>, observation: RequestObservation): void {
  const collector = openCollector(c)
  if (collector) collector.observation = observation
  else c.executionCtx.waitUntil(sendObservation(c.env, observation))
}

// If the queue refuses the message, its contents go straight into D1: ids
// (the event's, the request's) make either path count them once.
export async function sendRequestUsage(env: Pick<Env, 'DB' | 'USAGE'>, message: RequestUsage): Promise<void> {
  try {
    // The binding is typed by single events, which is what every other sender puts on it.
    await (env.USAGE as Queue<unknown>).send(message)
  } catch {
    await recordUsageEvents(env, message.events)
    if (message.observation) await recordObservations(env, [message.observation])
  }
}
