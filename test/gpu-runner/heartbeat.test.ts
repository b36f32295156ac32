import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import type { EdgeClient, RegistrationResponse } from '../../src/gpu-runner/edge-client.ts'
import { startHeartbeat, type Heartbeat } from '../../src/gpu-runner/heartbeat.ts'
import type { RunningJobRef } from '../../src/gpu-runner/job-supervisor.ts'
import { createLogger } from '../../src/gpu-runner/logger.ts'
import type { RunnerRegistration } from '../../src/shared/runner-wire.ts'
import { waitFor } from './support/fixtures.ts'

type Call = { at: number; registration: RunnerRegistration }

// An edge whose register answers are scripted per call: a reply, an error, or a delay first.
function scriptedEdge(answer: (call: number) => Promise<RegistrationResponse>) {
  const calls: Call[] = []
  const edge = {
    register: async (registration: RunnerRegistration) => {
      calls.push({ at: performance.now(), registration })
      return answer(calls.length)
    },
  } as unknown as EdgeClient
  return { edge, calls }
}

const reply = (overrides: Partial<RegistrationResponse> = {}): RegistrationResponse => ({
  runner_id: 'runner_1',
  heartbeat_ms: 60_000,
  stale: [],
  ...overrides,
})

describe('startHeartbeat', () => {
  let heartbeat: Heartbeat | null = null
  let state: 'active' | 'draining' = 'active'
  const registration = (): RunnerRegistration => ({
    runner_id: 'runner_1',
    state,
    url: 'http://127.0.0.1:1',
    capacity: 1,
    in_flight: 0,
    job_types: ['verify_artifact'],
    running: [],
  })
  const start = (edge: EdgeClient, intervalMs: number, onStale: (jobs: RunningJobRef[]) => void = () => {}) => {
    heartbeat = startHeartbeat({ edge, intervalMs, registration, onStale, logger: createLogger({ write: () => {} }) })
    return heartbeat
  }
  afterEach(async () => {
    await heartbeat?.stop()
    heartbeat = null
    state = 'active'
  })

  it('registers at once, then every interval', async () => {
    const { edge, calls } = scriptedEdge(async () => reply())
    const started = performance.now()
    start(edge, 150)
    await waitFor(() => calls.length === 3)
    expect(calls[0]!.at - started).toBeLessThan(50)
    expect(calls[2]!.at - calls[1]!.at).toBeGreaterThanOrEqual(140)
  })

  it('beats as often as the edge asks when that is more often', async () => {
    const { edge, calls } = scriptedEdge(async () => reply({ heartbeat_ms: 100 }))
    start(edge, 60_000)
    await waitFor(() => calls.length === 3, 1000)
  })

  it('retries a failed registration sooner than a beat, with backoff', async () => {
    const { edge, calls } = scriptedEdge(async (call) => {
      if (call <= 2) throw new Error('edge not up')
      return reply()
    })
    start(edge, 2000)
    await waitFor(() => calls.length === 3, 1900, 'the third try before one interval passed')
    // Backoff doubles from 0.5 s: the second retry waits longer than the first.
    expect(calls[2]!.at - calls[1]!.at).toBeGreaterThan(calls[1]!.at - calls[0]!.at)
  })

  it('hands the stale jobs to onStale', async () => {
    const stale = [{ job_id: 'job_1', attempt: 2 }]
    const seen: RunningJobRef[][] = []
    const { edge } = scriptedEdge(async () => reply({ stale }))
    start(edge, 60_000, (jobs) => seen.push(jobs))
    await waitFor(() => seen.length === 1)
    expect(seen[0]).toEqual(stale)
  })

  it('beats at once when asked, even while a registration is on its way', async () => {
    let release: () => void = () => {}
    const { edge, calls } = scriptedEdge(async (call) => {
      if (call === 1) await new Promise<void>((resolve) => (release = resolve))
      return reply()
    })
    start(edge, 60_000)
    await waitFor(() => calls.length === 1)
    state = 'draining'
    heartbeat!.beatNow()
    release()
    await waitFor(() => calls.length === 2, 500, 'the requested beat')
    expect(calls.map((call) => call.registration.state)).toEqual(['active', 'draining'])

    state = 'active'
    heartbeat!.beatNow()
    await waitFor(() => calls.length === 3, 500, 'a beat asked for while sleeping')
  })

  it('stops beating when stopped', async () => {
    const { edge, calls } = scriptedEdge(async () => reply())
    await start(edge, 50).stop()
    const count = calls.length
    await sleep(150)
    expect(calls).toHaveLength(count)
  })
})
