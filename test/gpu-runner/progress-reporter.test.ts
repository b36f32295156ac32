import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { createProgressReporter } from '../../src/gpu-runner/progress-reporter.ts'
import type { JobProgressReport } from '../../src/shared/runner-wire.ts'

function recorder() {
  const sent: JobProgressReport[] = []
  return { sent, send: async (report: JobProgressReport) => void sent.push(report) }
}

describe('createProgressReporter', () => {
  it('sends at most one report per interval, always the latest value', async () => {
    const { sent, send } = recorder()
    const reporter = createProgressReporter({ attempt: 2, send, intervalMs: 100 })
    const started = Date.now()
    for (let done = 1; Date.now() - started < 450; done++) {
      reporter.update({ done, total: null, unit: 'rows' })
      await sleep(5)
    }
    await reporter.flush()
    // 450 ms at one per 100 ms: the first at once, four more, and the final flush.
    expect(sent.length).toBeGreaterThanOrEqual(4)
    expect(sent.length).toBeLessThanOrEqual(7)
    expect(sent.every((report) => report.attempt === 2)).toBe(true)
    const dones = sent.map((report) => report.done)
    expect(dones).toEqual([...dones].sort((a, b) => a - b))
  })

  it('flush sends the last value once, and never repeats an unchanged one', async () => {
    const { sent, send } = recorder()
    const reporter = createProgressReporter({ attempt: 1, send, intervalMs: 10_000 })
    reporter.update({ done: 1, total: 10, unit: 'bytes' })
    await sleep(5)
    reporter.update({ done: 5, total: 10, unit: 'bytes' })
    reporter.update({ done: 10, total: 10, unit: 'bytes' })
    await reporter.flush()
    await reporter.flush()
    expect(sent.map((report) => report.done)).toEqual([1, 10])
  })

  it('sends nothing more after stop', async () => {
    const { sent, send } = recorder()
    const reporter = createProgressReporter({ attempt: 1, send, intervalMs: 20 })
    reporter.update({ done: 1, total: 10, unit: 'bytes' })
    await sleep(5)
    reporter.update({ done: 2, total: 10, unit: 'bytes' })
    reporter.stop()
    await sleep(40)
    await reporter.flush()
    expect(sent.map((report) => report.done)).toEqual([1])
  })
})
