import { setTimeout as sleep } from 'node:timers/promises'
import { backoffSeconds } from '../shared/backoff.ts'
import type { RunnerRegistration } from '../shared/runner-wire.ts'
import type { EdgeClient } from './edge-client.ts'
import type { RunningJobRef } from './job-supervisor.ts'
import { errorMessage, type Logger } from './logger.ts'

// Registers the runner with the edge and repeats the registration as its
// heartbeat. While the edge is unreachable (not up yet, restarting) it retries
// with backoff and the runner keeps serving. The edge answers with the jobs it
// no longer assigns to this runner, which the runner then stops.

export type Heartbeat = {
  // Beats at once instead of at the next interval, to tell the edge of a change now.
  beatNow(): void
  stop(): Promise<void>
}

export type HeartbeatOptions = {
  edge: EdgeClient
  registration(): RunnerRegistration
  intervalMs: number
  onStale(jobs: RunningJobRef[]): void
  logger: Logger
}

export function startHeartbeat(options: HeartbeatOptions): Heartbeat {
  const { logger } = options
  const stopping = new AbortController()
  const { signal } = stopping
  // A beat asked for while a registration is on its way goes out right after it:
  // that registration may have been built before the change it should announce.
  let beatRequested = false
  let wake = new AbortController()

  const loop = async () => {
    let failures = 0
    let registered = false
    let intervalMs = options.intervalMs
    while (!signal.aborted) {
      beatRequested = false
      try {
        const response = await options.edge.register(options.registration(), signal)
        // The edge decides when a runner counts as gone; never beat slower than it expects.
        intervalMs = Math.min(options.intervalMs, response.heartbeat_ms ?? options.intervalMs)
        if (!registered || failures > 0) logger.info('registered with the edge', { heartbeat_ms: intervalMs })
        registered = true
        failures = 0
        if (response.stale.length > 0) {
          logger.info('edge reassigned jobs', { stale: response.stale })
          options.onStale(response.stale)
        }
      } catch (error) {
        if (signal.aborted) return
        failures++
        logger.warn('registration with the edge failed', { error: errorMessage(error), failures })
      }
      if (beatRequested) continue
      // Backoff never waits longer than one beat: a runner silent for longer looks dead.
      const delayMs =
        failures > 0 ? backoffSeconds(failures, { baseSeconds: 0.5, maxSeconds: intervalMs / 1000 }) * 1000 : intervalMs
      wake = new AbortController()
      await sleep(delayMs, undefined, { signal: AbortSignal.any([signal, wake.signal]) }).catch(() => {})
    }
  }

  const running = loop()
  return {
    beatNow() {
      beatRequested = true
      wake.abort()
    },
    async stop() {
      stopping.abort()
      await running
    },
  }
}
