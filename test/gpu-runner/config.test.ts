import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { readRunnerConfig, RunnerConfigError } from '../../src/gpu-runner/config.ts'

const problemsOf = (env: Record<string, string>) => {
  try {
    readRunnerConfig(env)
  } catch (error) {
    if (error instanceof RunnerConfigError) return error.problems
    throw error
  }
  throw new Error('configuration was accepted')
}

describe('readRunnerConfig', () => {
  it('applies the documented defaults', () => {
    const config = readRunnerConfig({ MOAT_RUNNER_SECRET: 's3cret' })
    expect(config).toMatchObject({
      edgeUrl: 'http://127.0.0.1:8787',
      secret: 's3cret',
      runnerUrl: 'http://127.0.0.1:8788',
      listenHost: '127.0.0.1',
      listenPort: 8788,
      capacity: 2,
      cacheDir: resolve('.moat/cache'),
      heartbeatMs: 5000,
      shutdownGraceMs: 30000,
      maxBytesPerSecond: 0,
    })
    expect(config.runnerId).toMatch(/^runner_[0-9a-z]{26}$/)
    expect(readRunnerConfig({ MOAT_RUNNER_SECRET: 's3cret' }).runnerId).not.toBe(config.runnerId)
  })

  it('reads every setting', () => {
    const config = readRunnerConfig({
      MOAT_RUNNER_SECRET: 's3cret',
      MOAT_EDGE_URL: 'https://edge.example.com/moat/',
      MOAT_RUNNER_URL: 'http://[::1]:9000',
      MOAT_RUNNER_CAPACITY: '8',
      MOAT_CACHE_DIR: '/var/cache/moat',
      MOAT_RUNNER_HEARTBEAT_MS: '1000',
      MOAT_RUNNER_SHUTDOWN_GRACE_MS: '0',
      MOAT_RUNNER_MAX_BYTES_PER_SECOND: '1048576',
      MOAT_RUNNER_ID: 'gpu-box-1',
      MOAT_INFERENCE_BACKEND: 'wasm',
      MOAT_MODEL_CACHE_SIZE: '2',
      MOAT_BATCH_MAX_ROWS: '32',
      MOAT_BATCH_MAX_DELAY_MS: '5',
      MOAT_BATCH_MAX_QUEUED_ROWS: '100',
      MOAT_CHAOS_STEP_DELAY_MS: '250',
    })
    expect(config).toEqual({
      edgeUrl: 'https://edge.example.com/moat',
      secret: 's3cret',
      runnerUrl: 'http://[::1]:9000',
      listenHost: '::1',
      listenPort: 9000,
      capacity: 8,
      cacheDir: '/var/cache/moat',
      heartbeatMs: 1000,
      shutdownGraceMs: 0,
      maxBytesPerSecond: 1048576,
      runnerId: 'gpu-box-1',
      inferenceBackend: 'wasm',
      modelCacheSize: 2,
      batchMaxRows: 32,
      batchMaxDelayMs: 5,
      batchMaxQueuedRows: 100,
      chaosStepDelayMs: 250,
    })
  })

  it('refuses an unknown inference backend', () => {
    expect(() => readRunnerConfig({ MOAT_RUNNER_SECRET: 'x', MOAT_INFERENCE_BACKEND: 'tpu' })).toThrow(/MOAT_INFERENCE_BACKEND must be one of auto, node, wasm/)
  })

  it('treats empty values as unset', () => {
    const config = readRunnerConfig({ MOAT_RUNNER_SECRET: 'x', MOAT_RUNNER_CAPACITY: '', MOAT_EDGE_URL: ' ' })
    expect(config.capacity).toBe(2)
    expect(config.edgeUrl).toBe('http://127.0.0.1:8787')
  })

  it('requires the secret', () => {
    expect(problemsOf({})).toEqual([expect.stringContaining('MOAT_RUNNER_SECRET is required')])
    expect(problemsOf({ MOAT_RUNNER_SECRET: '   ' })).toEqual([expect.stringContaining('MOAT_RUNNER_SECRET')])
  })

  it.each([
    ['MOAT_RUNNER_CAPACITY', '0'],
    ['MOAT_RUNNER_CAPACITY', 'two'],
    ['MOAT_RUNNER_CAPACITY', '1.5'],
    ['MOAT_RUNNER_CAPACITY', '2000'],
    ['MOAT_RUNNER_HEARTBEAT_MS', '-5'],
    ['MOAT_RUNNER_HEARTBEAT_MS', '10'],
    ['MOAT_RUNNER_SHUTDOWN_GRACE_MS', '1e3'],
    ['MOAT_RUNNER_MAX_BYTES_PER_SECOND', 'fast'],
  ])('rejects %s=%s', (name, value) => {
    const problems = problemsOf({ MOAT_RUNNER_SECRET: 'x', [name]: value })
    expect(problems).toHaveLength(1)
    expect(problems[0]).toContain(name)
    expect(problems[0]).toContain(JSON.stringify(value))
  })

  it.each([
    ['MOAT_EDGE_URL', 'not a url'],
    ['MOAT_EDGE_URL', 'ftp://edge'],
    ['MOAT_RUNNER_URL', 'https://runner.example.com'],
    ['MOAT_RUNNER_URL', 'http://127.0.0.1:8788/runner'],
    ['MOAT_RUNNER_URL', 'http://127.0.0.1:8788/?x=1'],
    ['MOAT_RUNNER_ID', 'has spaces'],
  ])('rejects %s=%s', (name, value) => {
    const problems = problemsOf({ MOAT_RUNNER_SECRET: 'x', [name]: value })
    expect(problems).toHaveLength(1)
    expect(problems[0]).toContain(name)
  })

  it('reports every problem at once in one readable message', () => {
    let error: unknown
    try {
      readRunnerConfig({ MOAT_RUNNER_CAPACITY: '0', MOAT_EDGE_URL: 'nope' })
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(RunnerConfigError)
    const { problems, message } = error as RunnerConfigError
    expect(problems).toHaveLength(3)
    for (const problem of problems) expect(message).toContain(problem)
  })
})
