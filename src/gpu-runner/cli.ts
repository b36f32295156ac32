import { readRunnerConfig, RunnerConfigError, RUNNER_ENV_DEFAULTS } from './config.ts'
import { createLogger, errorMessage } from './logger.ts'
import { startRunner } from './runner.ts'

// `moat runner`: a runner configured from the environment, stopped gracefully
// by SIGTERM or SIGINT.

export const RUNNER_USAGE = `Usage: moat runner

Starts a Moat runner. Settings (environment variables):
  MOAT_RUNNER_SECRET                 required; the secret shared with the edge
  MOAT_EDGE_URL                      default ${RUNNER_ENV_DEFAULTS.MOAT_EDGE_URL}
  MOAT_RUNNER_URL                    default ${RUNNER_ENV_DEFAULTS.MOAT_RUNNER_URL}; the runner listens on its host and port
  MOAT_RUNNER_ID                     default a random id per process
  MOAT_RUNNER_CAPACITY               default ${RUNNER_ENV_DEFAULTS.MOAT_RUNNER_CAPACITY} concurrent jobs
  MOAT_CACHE_DIR                     default ${RUNNER_ENV_DEFAULTS.MOAT_CACHE_DIR}
  MOAT_RUNNER_HEARTBEAT_MS           default ${RUNNER_ENV_DEFAULTS.MOAT_RUNNER_HEARTBEAT_MS}
  MOAT_RUNNER_SHUTDOWN_GRACE_MS      default ${RUNNER_ENV_DEFAULTS.MOAT_RUNNER_SHUTDOWN_GRACE_MS}
  MOAT_RUNNER_MAX_BYTES_PER_SECOND   default ${RUNNER_ENV_DEFAULTS.MOAT_RUNNER_MAX_BYTES_PER_SECOND} (unlimited); caps artifact downloads
  MOAT_INFERENCE_BACKEND             default ${RUNNER_ENV_DEFAULTS.MOAT_INFERENCE_BACKEND}: node (onnxruntime-node), wasm (onnxruntime-web), webgpu (on Dawn), auto (node, else wasm)
  MOAT_MODEL_CACHE_SIZE              default ${RUNNER_ENV_DEFAULTS.MOAT_MODEL_CACHE_SIZE} loaded models (LRU, by artifact SHA-256)
  MOAT_BATCH_MAX_ROWS                default ${RUNNER_ENV_DEFAULTS.MOAT_BATCH_MAX_ROWS} rows per dynamic batch
  MOAT_BATCH_MAX_DELAY_MS            default ${RUNNER_ENV_DEFAULTS.MOAT_BATCH_MAX_DELAY_MS} ms a batch waits for more rows
  MOAT_BATCH_MAX_QUEUED_ROWS         default ${RUNNER_ENV_DEFAULTS.MOAT_BATCH_MAX_QUEUED_ROWS} rows waiting; beyond, inference answers 429
  MOAT_CHAOS_STEP_DELAY_MS           default ${RUNNER_ENV_DEFAULTS.MOAT_CHAOS_STEP_DELAY_MS}; fault injection for tests: a job waits this long after each step (a merged tensor, a chunk of rows); never set it in production
`

export async function main(args: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(RUNNER_USAGE)
    return
  }
  if (args.length > 0) {
    process.stderr.write(`moat runner takes no arguments, got ${args.join(' ')}\n\n${RUNNER_USAGE}`)
    process.exitCode = 2
    return
  }

  let config
  try {
    config = readRunnerConfig(env)
  } catch (error) {
    if (!(error instanceof RunnerConfigError)) throw error
    process.stderr.write(`moat runner: ${error.message}\n`)
    process.exitCode = 1
    return
  }

  const logger = createLogger()
  let runner
  try {
    runner = await startRunner(config, { logger })
  } catch (error) {
    logger.error('runner failed to start', { error: errorMessage(error) })
    process.exitCode = 1
    return
  }

  // Every signal asks for the same graceful shutdown: under `bin/moat.js`'s
  // re-exec a Ctrl-C arrives twice (from the terminal and forwarded), and
  // must not turn into a hard stop that skips releasing jobs.
  const stop = (signal: NodeJS.Signals) => {
    logger.info('signal received', { signal })
    runner.shutdown().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error('shutdown failed', { error: errorMessage(error) })
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}
