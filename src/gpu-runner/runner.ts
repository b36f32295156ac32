import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { createRunnerApp } from './app.ts'
import { createArtifactCache } from './artifact-cache.ts'
import { createDynamicBatcher } from './inference/dynamic-batcher.ts'
import { chooseBackend } from './inference/inference-backend.ts'
import { mountInferenceRoutes } from './inference/inference-routes.ts'
import { createModelCache } from './inference/model-cache.ts'
import { createByteRateLimiter } from './byte-rate-limiter.ts'
import type { RunnerConfig } from './config.ts'
import { createEdgeClient, type RetryOptions } from './edge-client.ts'
import { startHeartbeat } from './heartbeat.ts'
import { defaultJobRegistry, registeredJobTypes, type JobRegistry } from './job-registry.ts'
import { createJobSupervisor } from './job-supervisor.ts'
import { createLogger, type Logger } from './logger.ts'
import { createReplayCache } from './replay-cache.ts'

// A runner's whole life: serve, register, heartbeat, and on shutdown stop
// taking work, let running jobs finish within the grace period, hand the rest
// back to the edge, and close.

export type RunnerOptions = {
  logger?: Logger
  registry?: JobRegistry
  fetch?: typeof fetch
  retry?: RetryOptions
  progressIntervalMs?: number
}

export type Runner = {
  id: string
  // The URL registered with the edge, with the port actually bound.
  url: string
  readonly inFlight: number
  // What SIGTERM and SIGINT call; calling it again returns the same shutdown.
  shutdown(): Promise<void>
}

function listen(fetchHandler: (request: Request) => Response | Promise<Response>, hostname: string, port: number) {
  return new Promise<Server>((resolve, reject) => {
    const server = serve({ fetch: fetchHandler, hostname, port }) as Server
    server.once('error', reject)
    server.once('listening', () => {
      server.off('error', reject)
      resolve(server)
    })
  })
}

function close(server: Server) {
  return new Promise<void>((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()))
    server.closeIdleConnections()
  })
}

export async function startRunner(config: RunnerConfig, options: RunnerOptions = {}): Promise<Runner> {
  const logger = (options.logger ?? createLogger()).child({ runner_id: config.runnerId })
  const registry = options.registry ?? defaultJobRegistry
  const jobTypes = registeredJobTypes(registry)
  if (jobTypes.length === 0) throw new Error('a runner needs at least one job handler')
  const edge = createEdgeClient({
    edgeUrl: config.edgeUrl,
    secret: config.secret,
    fetch: options.fetch,
    retry: options.retry,
    logger,
  })
  const cache = createArtifactCache({
    dir: config.cacheDir,
    edge,
    limiter: createByteRateLimiter({ bytesPerSecond: config.maxBytesPerSecond }),
  })
  const backend = await chooseBackend(config.inferenceBackend)
  const models = createModelCache({ backend, artifacts: cache, capacity: config.modelCacheSize })
  const supervisor = createJobSupervisor({
    capacity: config.capacity,
    registry,
    edge,
    cache,
    models,
    logger,
    progressIntervalMs: options.progressIntervalMs,
    redeliverMs: config.heartbeatMs,
    chaosStepDelayMs: config.chaosStepDelayMs,
  })
  const batcher = createDynamicBatcher({
    maxRows: config.batchMaxRows,
    maxDelayMs: config.batchMaxDelayMs,
    maxQueuedRows: config.batchMaxQueuedRows,
  })
  let draining = false
  const app = createRunnerApp({
    runnerId: config.runnerId,
    secret: config.secret,
    supervisor,
    registry,
    replayCache: createReplayCache(),
    // By the next heartbeat the edge knows how many slots are free.
    retryAfterSeconds: Math.max(1, Math.ceil(config.heartbeatMs / 1000)),
    isDraining: () => draining,
    logger,
    extend: (runnerApp, signed) => mountInferenceRoutes(runnerApp, { backend, models, batcher, signed, retryAfterSeconds: 1 }),
  })

  const server = await listen(app.fetch, config.listenHost, config.listenPort)
  const url = new URL(config.runnerUrl)
  url.port = String((server.address() as AddressInfo).port)
  const runnerUrl = url.origin
  logger.info('runner listening', {
    pid: process.pid,
    url: runnerUrl,
    edge_url: config.edgeUrl,
    capacity: config.capacity,
    job_types: jobTypes,
    cache_dir: config.cacheDir,
    max_bytes_per_second: config.maxBytesPerSecond,
    inference_backend: backend.name,
  })

  const heartbeat = startHeartbeat({
    edge,
    intervalMs: config.heartbeatMs,
    registration: () => ({
      runner_id: config.runnerId,
      state: draining ? 'draining' : 'active',
      url: runnerUrl,
      capacity: config.capacity,
      in_flight: supervisor.inFlight,
      job_types: jobTypes,
      running: supervisor.running(),
    }),
    onStale: (jobs) => supervisor.abortStale(jobs),
    logger,
  })

  const drainAndClose = async () => {
    draining = true
    logger.info('shutting down', { in_flight: supervisor.inFlight, grace_ms: config.shutdownGraceMs })
    // The edge learns at once that no new job should come here. Heartbeats go
    // on while jobs finish, or the edge would think this runner dead and hand
    // its jobs to another one.
    heartbeat.beatNow()
    if (!(await supervisor.waitForIdle(config.shutdownGraceMs))) {
      logger.warn('grace period over, releasing unfinished jobs', { in_flight: supervisor.inFlight })
      await supervisor.releaseAll('runner shutting down')
    }
    await heartbeat.stop()
    await close(server)
    logger.info('runner stopped')
  }

  let stopping: Promise<void> | null = null
  return {
    id: config.runnerId,
    url: runnerUrl,
    get inFlight() {
      return supervisor.inFlight
    },
    shutdown() {
      stopping ??= drainAndClose()
      return stopping
    },
  }
}
