import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { startFakeEdge, type FakeEdge } from './support/fake-edge.ts'
import { SECRET, waitFor } from './support/fixtures.ts'

const BIN = fileURLToPath(new URL('../../bin/moat.js', import.meta.url))
const PRETEND_NODE_20 = fileURLToPath(new URL('./support/pretend-node-20.mjs', import.meta.url))

type Run = { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

// Runs bin/moat.js; with `oldNode` it believes it runs on Node 20.
function moat(args: string[], options: { env?: NodeJS.ProcessEnv; oldNode?: boolean } = {}) {
  const nodeArgs = options.oldNode ? ['--import', PRETEND_NODE_20] : []
  const child = spawn(process.execPath, [...nodeArgs, BIN, ...args], {
    env: { PATH: process.env.PATH, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const output = { stdout: '', stderr: '' }
  child.stdout.on('data', (chunk: Buffer) => (output.stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (output.stderr += chunk.toString()))
  const done = new Promise<Run>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, ...output })))
  return { child, output, done }
}

function killIfAlive(pid: number) {
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // Already gone, as it should be.
  }
}

const jsonLines = (text: string) =>
  text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)

describe('bin/moat.js', () => {
  it('prints usage for --help', async () => {
    const run = await moat(['--help']).done
    expect(run.code).toBe(0)
    expect(run.stdout).toContain('Usage: moat <command>')
    expect(run.stdout).toContain('runner')
    expect(run.stdout).toContain('start')
  })

  it('answers an unknown command, or none, with usage and exit code 2', async () => {
    const unknown = await moat(['frobnicate']).done
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain('unknown command "frobnicate"')
    expect(unknown.stderr).toContain('Usage: moat <command>')
    const none = await moat([]).done
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('Usage: moat <command>')
  })

  it('lists the runner settings with runner --help', async () => {
    const run = await moat(['runner', '--help']).done
    expect(run.code).toBe(0)
    for (const name of ['MOAT_RUNNER_SECRET', 'MOAT_EDGE_URL', 'MOAT_RUNNER_MAX_BYTES_PER_SECOND']) {
      expect(run.stdout).toContain(name)
    }
  })

  it('exits 1 with a clear message on a bad configuration, through the re-exec too', async () => {
    for (const oldNode of [false, true]) {
      const run = await moat(['runner'], { oldNode, env: { MOAT_RUNNER_SECRET: SECRET, MOAT_RUNNER_CAPACITY: 'lots' } }).done
      expect(run.code).toBe(1)
      expect(run.stderr).toContain('invalid runner configuration')
      expect(run.stderr).toContain('MOAT_RUNNER_CAPACITY must be an integer')
      expect(run.stderr).not.toContain(SECRET)
    }
  })

  describe('runner process', () => {
    let edge: FakeEdge
    let cacheDir: string
    let runnerPid: number | undefined
    afterEach(async () => {
      // A failed run could leave the re-executed runner behind; never leak it.
      if (runnerPid) killIfAlive(runnerPid)
      runnerPid = undefined
      await edge?.close()
      await rm(cacheDir, { recursive: true, force: true })
    })

    it('re-executes itself on an old Node, and stops gracefully when the parent gets SIGTERM', async () => {
      edge = await startFakeEdge(SECRET)
      cacheDir = await mkdtemp(join(tmpdir(), 'moat-cli-test-'))
      const { child, output, done } = moat(['runner'], {
        oldNode: true,
        env: {
          MOAT_RUNNER_SECRET: SECRET,
          MOAT_EDGE_URL: edge.url,
          MOAT_RUNNER_URL: 'http://127.0.0.1:0',
          MOAT_CACHE_DIR: cacheDir,
          MOAT_RUNNER_HEARTBEAT_MS: '100',
          MOAT_RUNNER_ID: 'runner-cli',
        },
      })
      await waitFor(() => edge.registrations.length > 0, 10_000, 'the runner to register')
      runnerPid = jsonLines(output.stderr).find((line) => line.msg === 'runner listening')?.pid as number | undefined
      expect(edge.registrations[0]).toMatchObject({ runner_id: 'runner-cli', job_types: ['verify_artifact', 'merge', 'batch_inference'] })

      child.kill('SIGTERM')
      const run = await done
      expect(run.signal).toBeNull()
      expect(run.code).toBe(0)
      const lines = jsonLines(output.stderr)
      const parentPid = lines.find((line) => 'pretend_node_20_pid' in line)?.pretend_node_20_pid
      expect(parentPid).toBe(child.pid)
      expect(runnerPid).toEqual(expect.any(Number))
      expect(runnerPid).not.toBe(parentPid)
      expect(lines.map((line) => line.msg)).toEqual(expect.arrayContaining(['signal received', 'shutting down', 'runner stopped']))
      expect(output.stderr).not.toContain(SECRET)
    })
  })
})
