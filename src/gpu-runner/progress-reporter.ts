import type { JobProgressReport } from '../shared/runner-wire.ts'
import { errorMessage, type Logger } from './logger.ts'

// Sends a job's progress at most once per interval, always the latest value,
// one request at a time so reports reach the edge in order. `flush` sends the
// last value before the result; `stop` drops whatever is pending once a job is
// aborted, because an aborted job reports nothing more.

export type Progress = Omit<JobProgressReport, 'attempt'>

export type ProgressReporter = {
  update(progress: Progress): void
  flush(): Promise<void>
  stop(): void
}

export type ProgressReporterOptions = {
  attempt: number
  send(report: JobProgressReport): Promise<void>
  intervalMs?: number
  logger?: Logger
  now?: () => number
}

const sameProgress = (a: Progress | null, b: Progress) =>
  a !== null && a.done === b.done && a.total === b.total && a.unit === b.unit

export function createProgressReporter(options: ProgressReporterOptions): ProgressReporter {
  const intervalMs = options.intervalMs ?? 250
  const now = options.now ?? Date.now
  let latest: Progress | null = null
  let sent: Progress | null = null
  let lastSentAt = Number.NEGATIVE_INFINITY
  let timer: NodeJS.Timeout | null = null
  let sending: Promise<void> = Promise.resolve()
  let stopped = false

  const sendLatest = () => {
    timer = null
    sending = sending.then(async () => {
      if (stopped || latest === null || sameProgress(sent, latest)) return
      const progress = latest
      sent = progress
      lastSentAt = now()
      try {
        await options.send({ attempt: options.attempt, ...progress })
      } catch (error) {
        options.logger?.warn('progress report failed', { error: errorMessage(error) })
      }
    })
    return sending
  }

  return {
    update(progress) {
      if (stopped) return
      latest = progress
      if (timer) return
      timer = setTimeout(sendLatest, Math.max(0, lastSentAt + intervalMs - now()))
    },
    async flush() {
      if (timer) clearTimeout(timer)
      await sendLatest()
    },
    stop() {
      stopped = true
      if (timer) clearTimeout(timer)
      timer = null
    },
  }
}
