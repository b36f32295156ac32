import type { Context, MiddlewareHandler } from 'hono'
import type { RequestObservation } from '../../shared/traffic/request-observation.ts'
import type { UsageEvent } from '../../shared/usage-event.ts'
import type { AppEnv } from '../env.ts'
import { sendUsageMessage } from './usage-queue.ts'

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
    c.executionCtx.waitUntil(sendUsageMessage(c.env, { type: 'request_usage', events: collector.events, observation: collector.observation }))
  }
}

function openCollector(c: Context<AppEnv>): UsageCollector | null {
  const collector = c.get('usage') as UsageCollector | undefined
  return collector?.open ? collector : null
}

export function addUsageEvent(c: Context<AppEnv>, event: UsageEvent): void {
  const collector = openCollector(c)
  if (collector) collector.events.push(event)
  else c.executionCtx.waitUntil(sendUsageMessage(c.env, event))
}

export function addObservation(c: Context<AppEnv>, observation: RequestObservation): void {
  const collector = openCollector(c)
  if (collector) collector.observation = observation
  else c.executionCtx.waitUntil(sendUsageMessage(c.env, observation))
}
