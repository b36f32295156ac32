import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

// Starting the local topology: the edge under `wrangler dev` (D1, R2, Queues
// and Durable Objects emulated by Miniflare) and runners as child processes.
// `npm start`, the end-to-end tests and the benchmarks all start it this way.

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const WRANGLER = join(ROOT, 'node_modules', 'wrangler', 'bin', 'wrangler.js')
const MOAT = join(ROOT, 'bin', 'moat.js')

// Keeps wrangler off the network: no metrics, no cf fetch, no banner.
export const QUIET_WRANGLER_ENV = {
  WRANGLER_SEND_METRICS: 'false',
  CLOUDFLARE_CF_FETCH_ENABLED: 'false',
  WRANGLER_HIDE_BANNER: 'true',
  NO_D1_WARNING: 'true',
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

export type Logged = { child: ChildProcess; output: () => string }

function startProcess(args: string[], env: NodeJS.ProcessEnv, echo: boolean): Logged {
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-200_000)
    if (echo) process.stderr.write(chunk)
  }
  child.stdout!.on('data', collect)
  child.stderr!.on('data', collect)
  return { child, output: () => output }
}

async function runToEnd(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const { child, output } = startProcess(args, env, false)
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  if (code !== 0) throw new Error(`${args.join(' ')} exited with ${code}:\n${output()}`)
  return output()
}

export async function waitForHealthy(url: string, timeoutMs: number, process?: Logged): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (process && process.child.exitCode !== null) throw new Error(`process exited before ${url} was healthy:\n${process.output()}`)
    const ok = await fetch(url, { signal: AbortSignal.timeout(2000) }).then((res) => res.ok, () => false)
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error(`${url} not healthy after ${timeoutMs} ms${process ? `:\n${process.output()}` : ''}`)
}

export type EdgeOptions = {
  port: number
  // Where Miniflare keeps D1, R2, queues and Durable Objects between runs.
  persistTo: string
  vars: Record<string, string>
  echo?: boolean
}

export type Edge = Logged & { url: string; stop: () => Promise<void> }

export async function applyLocalMigrations(persistTo: string): Promise<void> {
  await runToEnd([WRANGLER, 'd1', 'migrations', 'apply', 'DB', '--local', '--persist-to', persistTo], {
    ...process.env,
    ...QUIET_WRANGLER_ENV,
    CI: 'true',
  })
}

export async function startEdge(options: EdgeOptions): Promise<Edge> {
  await applyLocalMigrations(options.persistTo)
  const inspectorPort = await freePort()
  const vars = Object.entries(options.vars).flatMap(([name, value]) => ['--var', `${name}:${value}`])
  const logged = startProcess(
    [
      WRANGLER,
      'dev',
      '--ip',
      '127.0.0.1',
      '--port',
      String(options.port),
      '--inspector-port',
      String(inspectorPort),
      '--persist-to',
      options.persistTo,
      '--show-interactive-dev-session=false',
      '--test-scheduled',
      ...vars,
    ],
    { ...process.env, ...QUIET_WRANGLER_ENV },
    options.echo ?? false,
  )
  const url = `http://127.0.0.1:${options.port}`
  const edge = { ...logged, url, stop: () => stopProcess(logged.child, 'SIGINT') }
  try {
    await waitForHealthy(`${url}/healthz`, 60_000, logged)
  } catch (error) {
    await edge.stop()
    throw error
  }
  return edge
}

export type RunnerOptions = { port: number; edgeUrl: string; secret: string; env?: Record<string, string>; echo?: boolean }
export type Runner = Logged & { url: string; stop: () => Promise<void>; kill: () => Promise<void> }

export async function startRunner(options: RunnerOptions): Promise<Runner> {
  const url = `http://127.0.0.1:${options.port}`
  const logged = startProcess(
    [MOAT, 'runner'],
    {
      ...process.env,
      MOAT_EDGE_URL: options.edgeUrl,
      MOAT_RUNNER_SECRET: options.secret,
      MOAT_RUNNER_URL: url,
      ...options.env,
    },
    options.echo ?? false,
  )
  const runner = {
    ...logged,
    url,
    stop: () => stopProcess(logged.child, 'SIGTERM'),
    kill: () => stopProcess(logged.child, 'SIGKILL'),
  }
  try {
    await waitForHealthy(`${url}/healthz`, 30_000, logged)
  } catch (error) {
    await runner.kill()
    throw error
  }
  return runner
}

// Signals a child and waits for it to exit; a child that ignores the signal
// for 15 s is killed.
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill(signal)
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
  await exited
  clearTimeout(timer)
}
