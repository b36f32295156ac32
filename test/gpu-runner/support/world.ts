// A real runner on loopback, wired to a fake edge, as the runner tests use it.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { VerifyArtifactResult } from '../../../src/shared/job-types.ts'
import { readRunnerConfig, type RunnerEnv } from '../../../src/gpu-runner/config.ts'
import type { JobRegistry } from '../../../src/gpu-runner/job-registry.ts'
import { createLogger } from '../../../src/gpu-runner/logger.ts'
import { startRunner, type Runner } from '../../../src/gpu-runner/runner.ts'
import { startFakeEdge, type FakeEdge } from './fake-edge.ts'
import { FAST_RETRY, SECRET } from './fixtures.ts'

export async function healthz(runner: Runner): Promise<{ in_flight: number; [key: string]: unknown }> {
  return (await (await fetch(`${runner.url}/healthz`)).json()) as { in_flight: number }
}

export function resultOf(edge: FakeEdge, jobId: string) {
  return edge.results.find((entry) => entry.jobId === jobId)?.report
}

export function verifyResultOf(edge: FakeEdge, jobId: string): VerifyArtifactResult {
  const report = resultOf(edge, jobId)
  if (report?.status !== 'succeeded') throw new Error(`job ${jobId} did not succeed: ${JSON.stringify(report)}`)
  return report.result as VerifyArtifactResult
}

export type TestRunnerOptions = {
  env?: RunnerEnv
  registry?: JobRegistry
  // An edge started by the test; by default a fresh one.
  edge?: FakeEdge
}

export type TestWorld = {
  edge: FakeEdge
  runner: Runner
  cacheDir: string
  logs: string[]
  close(): Promise<void>
}

// A fake edge and a runner registered with it, on loopback ports.
export async function startWorld(options: TestRunnerOptions = {}): Promise<TestWorld> {
  const edge = options.edge ?? (await startFakeEdge(SECRET))
  const cacheDir = await mkdtemp(join(tmpdir(), 'moat-runner-test-'))
  const config = readRunnerConfig({
    MOAT_RUNNER_SECRET: SECRET,
    MOAT_EDGE_URL: edge.url,
    MOAT_RUNNER_URL: 'http://127.0.0.1:0',
    MOAT_CACHE_DIR: cacheDir,
    MOAT_RUNNER_HEARTBEAT_MS: '100',
    MOAT_RUNNER_SHUTDOWN_GRACE_MS: '0',
    ...options.env,
  })
  const logs: string[] = []
  const runner = await startRunner(config, {
    logger: createLogger({ write: (line) => logs.push(line) }),
    retry: FAST_RETRY,
    registry: options.registry,
  })
  return {
    edge,
    runner,
    cacheDir,
    logs,
    async close() {
      await runner.shutdown()
      await edge.close()
      await rm(cacheDir, { recursive: true, force: true })
    },
  }
}

// A job type whose handler waits until the test lets it finish, so tests
// control exactly how long a job runs.
export function gatedRegistry() {
  const calls: string[] = []
  const gates = new Map<string, () => void>()
  const registry: JobRegistry = {
    verify_artifact: async ({ job, signal }) => {
      calls.push(`${job.job_id}#${job.attempt}`)
      await new Promise<void>((resolve, reject) => {
        gates.set(job.job_id, resolve)
        signal.addEventListener('abort', () => reject(signal.reason), { once: true })
      })
      return { verdict: 'verified', files: [] }
    },
  }
  return { registry, calls, finish: (jobId: string) => gates.get(jobId)?.() }
}
