import { inspectResponseSchema, runResponseSchema, type InspectResponse, type Probe, type RunResponse, type WireTensor } from '../../shared/inference-wire.ts'
import type { ArtifactRef } from '../../shared/job-types.ts'
import { signRunnerRequest } from '../../shared/runner-signature.ts'
import type { Env } from '../env.ts'
import { ApiError } from '../errors.ts'
import { readSettings } from '../settings.ts'

// The synchronous path to a runner (no queue): the edge signs the request and
// waits for the answer. A model goes to the same runner while the set of
// runners stays the same, so it stays loaded in that runner's cache.

type RunnerChoice = { id: string; url: string }

function stickyIndex(key: string, count: number): number {
  let hash = 2166136261
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 16777619) >>> 0
  return hash % count
}

// The live runners, read at most once a second per isolate: predict is the
// hot path, and a runner that just died is answered by a 502 and skipped once
// the next read no longer lists it.
const RUNNER_LIST_TTL_MS = 1000
let runnerList: { at: number; runners: Promise<RunnerChoice[]> } | undefined

async function liveRunners(env: Env, fresh: boolean): Promise<RunnerChoice[]> {
  const now = Date.now()
  if (!fresh && runnerList && now - runnerList.at < RUNNER_LIST_TTL_MS) return runnerList.runners
  const { runnerTtlSeconds } = readSettings(env)
  const runners = env.DB.prepare(`SELECT id, url FROM runners WHERE status = 'active' AND heartbeat_at >= ?1 ORDER BY id`)
    .bind(now - runnerTtlSeconds * 1000)
    .all<RunnerChoice>()
    .then((result) => result.results)
  runnerList = { at: now, runners }
  runners.catch(() => (runnerList = undefined))
  return runners
}

async function pickRunnerFor(env: Env, key: string, fresh = false): Promise<RunnerChoice> {
  const results = await liveRunners(env, fresh)
  if (results.length === 0) {
    throw new ApiError(503, 'No runner is available to serve this model; retry shortly', { code: 'no_runner', headers: { 'retry-after': '2' } })
  }
  return results[stickyIndex(key, results.length)]!
}

type RunnerAnswer = { status: number; body: any }

async function post(env: Env, runner: RunnerChoice, path: string, payload: unknown): Promise<RunnerAnswer> {
  const body = JSON.stringify(payload)
  const url = new URL(path, runner.url)
  const headers = await signRunnerRequest({ secret: env.MOAT_RUNNER_SECRET ?? '', method: 'POST', path: url.pathname, body })
  let response: Response
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body,
      signal: AbortSignal.timeout(readSettings(env).inferenceTimeoutMs),
    })
  } catch (error) {
    const timedOut = error instanceof Error && error.name === 'TimeoutError'
    throw new ApiError(timedOut ? 504 : 502, timedOut ? 'The runner did not answer in time' : `The runner is unreachable: ${String(error)}`, {
      code: timedOut ? 'runner_timeout' : 'runner_unreachable',
    })
  }
  return { status: response.status, body: await response.json().catch(() => null) }
}

function runnerError(answer: RunnerAnswer): ApiError {
  const message: string = answer.body?.error?.message ?? `the runner answered ${answer.status}`
  const code: string = answer.body?.error?.code ?? 'runner_error'
  if (answer.status === 429) return new ApiError(429, 'The model is busy; retry shortly', { code: 'model_busy', headers: { 'retry-after': '1' } })
  if (answer.status === 400) return new ApiError(400, message, { code })
  if (answer.status === 422) return new ApiError(422, `The model does not load: ${message}`, { code })
  // A refused model (hash or probe mismatch) is a fault of the stored artifact, not of the request.
  if (answer.status === 409 || answer.status === 404) return new ApiError(409, message, { code })
  return new ApiError(502, `The runner failed: ${message}`, { code: 'runner_error' })
}

export async function inspectModel(env: Env, artifact: ArtifactRef, probe: { seed: number; rows: number }): Promise<InspectResponse> {
  // Registration is rare: it reads the runners afresh.
  const runner = await pickRunnerFor(env, artifact.sha256, true)
  const answer = await post(env, runner, '/inference/inspect', { artifact, probe })
  if (answer.status !== 200) throw runnerError(answer)
  return inspectResponseSchema.parse(answer.body)
}

export async function runModel(env: Env, artifact: ArtifactRef, probe: Probe | null, input: WireTensor): Promise<RunResponse> {
  const runner = await pickRunnerFor(env, artifact.sha256)
  const answer = await post(env, runner, '/inference/run', { artifact, probe, input })
  if (answer.status !== 200) throw runnerError(answer)
  return runResponseSchema.parse(answer.body)
}
