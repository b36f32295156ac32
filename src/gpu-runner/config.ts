import { resolve } from 'node:path'
import { createId } from '../shared/ids.ts'
import { BACKEND_NAMES, type BackendName } from './inference/inference-backend.ts'

// Every runner setting comes from the environment. Reading collects all the
// problems at once so an operator fixes a bad deployment in one round.

export type RunnerConfig = {
  edgeUrl: string
  secret: string
  // What the edge is told to call; the runner listens on its host and port.
  runnerUrl: string
  listenHost: string
  listenPort: number
  capacity: number
  cacheDir: string
  heartbeatMs: number
  shutdownGraceMs: number
  // 0 means unlimited.
  maxBytesPerSecond: number
  runnerId: string
  inferenceBackend: BackendName
  modelCacheSize: number
  batchMaxRows: number
  batchMaxDelayMs: number
  batchMaxQueuedRows: number
  // Fault injection for resilience tests; 0 in production.
  chaosStepDelayMs: number
}

export type RunnerEnv = Record<string, string | undefined>

export class RunnerConfigError extends Error {
  readonly problems: string[]

  constructor(problems: string[]) {
    super(`invalid runner configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`)
    this.name = 'RunnerConfigError'
    this.problems = problems
  }
}

export const RUNNER_ENV_DEFAULTS = {
  MOAT_EDGE_URL: 'http://127.0.0.1:8787',
  MOAT_RUNNER_URL: 'http://127.0.0.1:8788',
  MOAT_RUNNER_CAPACITY: '2',
  MOAT_CACHE_DIR: '.moat/cache',
  MOAT_RUNNER_HEARTBEAT_MS: '5000',
  MOAT_RUNNER_SHUTDOWN_GRACE_MS: '30000',
  MOAT_RUNNER_MAX_BYTES_PER_SECOND: '0',
  MOAT_INFERENCE_BACKEND: 'auto',
  MOAT_MODEL_CACHE_SIZE: '4',
  MOAT_BATCH_MAX_ROWS: '64',
  MOAT_BATCH_MAX_DELAY_MS: '2',
  MOAT_BATCH_MAX_QUEUED_ROWS: '4096',
  MOAT_CHAOS_STEP_DELAY_MS: '0',
} as const

const RUNNER_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

type Reader = {
  text(name: keyof typeof RUNNER_ENV_DEFAULTS): string
  integer(name: keyof typeof RUNNER_ENV_DEFAULTS, min: number, max: number): number
  problems: string[]
}

function createReader(env: RunnerEnv): Reader {
  const problems: string[] = []
  // An empty value counts as unset: env files and compose often write `NAME=`.
  const text = (name: keyof typeof RUNNER_ENV_DEFAULTS) => {
    const value = env[name]?.trim()
    return value ? value : RUNNER_ENV_DEFAULTS[name]
  }
  const integer = (name: keyof typeof RUNNER_ENV_DEFAULTS, min: number, max: number) => {
    const value = text(name)
    const parsed = /^\d+$/.test(value) ? Number(value) : Number.NaN
    if (Number.isSafeInteger(parsed) && parsed >= min && parsed <= max) return parsed
    problems.push(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`)
    return min
  }
  return { text, integer, problems }
}

function parseHttpUrl(name: string, value: string, problems: string[]): URL | null {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    problems.push(`${name} must be an absolute http(s) URL, got ${JSON.stringify(value)}`)
    return null
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    problems.push(`${name} must use http or https, got ${JSON.stringify(value)}`)
    return null
  }
  if (url.search || url.hash || url.username || url.password) {
    problems.push(`${name} must not carry a query, fragment or credentials`)
    return null
  }
  return url
}

export function readRunnerConfig(env: RunnerEnv): RunnerConfig {
  const reader = createReader(env)
  const { problems } = reader

  const secret = env.MOAT_RUNNER_SECRET ?? ''
  if (!secret.trim()) problems.push('MOAT_RUNNER_SECRET is required (the secret shared with the edge)')

  const edgeUrl = parseHttpUrl('MOAT_EDGE_URL', reader.text('MOAT_EDGE_URL'), problems)
  const runnerUrl = parseHttpUrl('MOAT_RUNNER_URL', reader.text('MOAT_RUNNER_URL'), problems)
  // The runner serves plain HTTP at the root of the host and port it is
  // reached on, so the URL the edge calls must say exactly that.
  if (runnerUrl && runnerUrl.protocol !== 'http:') {
    problems.push('MOAT_RUNNER_URL must use http: the runner listens on its host and port without TLS')
  }
  if (runnerUrl && runnerUrl.pathname !== '/') problems.push('MOAT_RUNNER_URL must not have a path')

  const capacity = reader.integer('MOAT_RUNNER_CAPACITY', 1, 1024)
  const heartbeatMs = reader.integer('MOAT_RUNNER_HEARTBEAT_MS', 100, 3_600_000)
  const shutdownGraceMs = reader.integer('MOAT_RUNNER_SHUTDOWN_GRACE_MS', 0, 3_600_000)
  const maxBytesPerSecond = reader.integer('MOAT_RUNNER_MAX_BYTES_PER_SECOND', 0, Number.MAX_SAFE_INTEGER)

  const inferenceBackend = reader.text('MOAT_INFERENCE_BACKEND')
  if (!(BACKEND_NAMES as readonly string[]).includes(inferenceBackend)) {
    problems.push(`MOAT_INFERENCE_BACKEND must be one of ${BACKEND_NAMES.join(', ')}, got ${JSON.stringify(inferenceBackend)}`)
  }
  const modelCacheSize = reader.integer('MOAT_MODEL_CACHE_SIZE', 1, 1024)
  const batchMaxRows = reader.integer('MOAT_BATCH_MAX_ROWS', 1, 65_536)
  const batchMaxDelayMs = reader.integer('MOAT_BATCH_MAX_DELAY_MS', 0, 10_000)
  const batchMaxQueuedRows = reader.integer('MOAT_BATCH_MAX_QUEUED_ROWS', 1, 10_000_000)
  const chaosStepDelayMs = reader.integer('MOAT_CHAOS_STEP_DELAY_MS', 0, 3_600_000)

  const runnerId = env.MOAT_RUNNER_ID?.trim() || createId('runner')
  if (!RUNNER_ID.test(runnerId)) {
    problems.push('MOAT_RUNNER_ID must be 1 to 128 characters of letters, digits, ".", "_", ":" or "-"')
  }

  if (problems.length > 0 || !edgeUrl || !runnerUrl) throw new RunnerConfigError(problems)

  const listenPort = runnerUrl.port ? Number(runnerUrl.port) : 80
  return {
    edgeUrl: edgeUrl.href.replace(/\/$/, ''),
    secret,
    runnerUrl: runnerUrl.origin,
    // URL keeps the brackets of an IPv6 host; listen() wants the bare address.
    listenHost: runnerUrl.hostname.replace(/^\[(.*)\]$/, '$1'),
    listenPort,
    capacity,
    cacheDir: resolve(reader.text('MOAT_CACHE_DIR')),
    heartbeatMs,
    shutdownGraceMs,
    maxBytesPerSecond,
    runnerId,
    inferenceBackend: inferenceBackend as BackendName,
    modelCacheSize,
    batchMaxRows,
    batchMaxDelayMs,
    batchMaxQueuedRows,
    chaosStepDelayMs,
  }
}
