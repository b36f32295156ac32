import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { demoSafetensors } from './demo-data.ts'
import { ROOT, startEdge, startRunner, type Edge, type Runner } from './local-stack.ts'

// `npm start`: the whole of Moat on this machine. The edge runs under wrangler
// dev with D1, R2, Queues and Durable Objects emulated and persisted; one
// runner beside it; a demo tenant, key and model seeded once.

export type StartSettings = { edgePort: number; runnerPort: number; stateDir: string }

export function readStartSettings(env: NodeJS.ProcessEnv = process.env): StartSettings {
  const port = (name: string, fallback: number) => {
    const value = env[name]
    if (!value) return fallback
    const parsed = Number(value)
    if (!Number.isInteger(parsed) || parsed < 1 || parsed > 65535) throw new Error(`${name} must be a port number, got ${value}`)
    return parsed
  }
  return {
    edgePort: port('MOAT_EDGE_PORT', 8787),
    runnerPort: port('MOAT_RUNNER_PORT', 8788),
    stateDir: resolve(ROOT, env.MOAT_STATE_DIR || '.moat'),
  }
}

function parseEnvFile(text: string): Record<string, string> {
  const vars: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const match = /^\s*([A-Z0-9_]+)\s*=\s*"?([^"\n]*)"?\s*$/.exec(line)
    if (match) vars[match[1]!] = match[2]!
  }
  return vars
}

// Wrangler reads secrets for local development from .dev.vars; it is made once
// with random values and kept, so keys issued earlier stay valid.
export type DevSecrets = { MOAT_ADMIN_TOKEN: string; MOAT_RUNNER_SECRET: string; MOAT_SECRETS_KEY: string }

export function ensureDevVars(path = join(ROOT, '.dev.vars')): DevSecrets {
  const existing = existsSync(path) ? parseEnvFile(readFileSync(path, 'utf8')) : {}
  const vars: DevSecrets = {
    MOAT_ADMIN_TOKEN: existing.MOAT_ADMIN_TOKEN || `moat_admin_${randomBytes(24).toString('hex')}`,
    MOAT_RUNNER_SECRET: existing.MOAT_RUNNER_SECRET || randomBytes(32).toString('hex'),
    MOAT_SECRETS_KEY: existing.MOAT_SECRETS_KEY || randomBytes(32).toString('hex'),
  }
  if (Object.entries(vars).some(([name, value]) => existing[name] !== value)) {
    const rest = Object.entries(existing).filter(([name]) => !(name in vars))
    const lines = [...Object.entries(vars), ...rest].map(([name, value]) => `${name}="${value}"`)
    writeFileSync(path, `${lines.join('\n')}\n`, { mode: 0o600 })
  }
  return vars
}

type Demo = { MOAT_URL: string; MOAT_API_KEY: string; MOAT_ADMIN_TOKEN: string; MOAT_DEMO_MODEL: string; MOAT_DIGITS_MODEL: string }

async function api(url: string, token: string, path: string, init: RequestInit = {}) {
  const res = await fetch(`${url}${path}`, {
    ...init,
    headers: {
      authorization: `Bearer ${token}`,
      ...(typeof init.body === 'string' ? { 'content-type': 'application/json' } : {}),
      ...init.headers,
    },
  })
  const body = await res.json().catch(() => null)
  if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${path} answered ${res.status}: ${JSON.stringify(body)}`)
  return body as any
}

// Seeds the demo tenant, key and model once; a later start reuses them while
// the key still works (the edge's state persists under the state directory).
export async function seedDemo(edgeUrl: string, adminToken: string, demoEnvPath: string): Promise<Demo> {
  if (existsSync(demoEnvPath)) {
    const saved = parseEnvFile(readFileSync(demoEnvPath, 'utf8')) as Partial<Demo>
    if (saved.MOAT_API_KEY && saved.MOAT_DEMO_MODEL && saved.MOAT_DIGITS_MODEL) {
      const alive = await fetch(`${edgeUrl}/v1/models/${saved.MOAT_DIGITS_MODEL}`, { headers: { authorization: `Bearer ${saved.MOAT_API_KEY}` } })
      if (alive.ok) {
        return {
          MOAT_URL: edgeUrl,
          MOAT_API_KEY: saved.MOAT_API_KEY,
          MOAT_ADMIN_TOKEN: adminToken,
          MOAT_DEMO_MODEL: saved.MOAT_DEMO_MODEL,
          MOAT_DIGITS_MODEL: saved.MOAT_DIGITS_MODEL,
        }
      }
    }
  }
  const created = await api(edgeUrl, adminToken, '/admin/tenants', { method: 'POST', body: JSON.stringify({ name: 'demo' }) })
  const key = created.api_key.key as string
  const model = await api(edgeUrl, key, '/v1/models', {
    method: 'POST',
    body: JSON.stringify({ name: 'demo-linear', format: 'safetensors', task: 'regression' }),
  })
  await api(edgeUrl, key, `/v1/models/${model.id}/versions/1/artifact`, { method: 'PUT', body: demoSafetensors() })
  await api(edgeUrl, key, `/v1/models/${model.id}/versions/1`, { method: 'PATCH', body: JSON.stringify({ stage: 'production' }) })
  // The digit classifier trained by scripts/mnist/train-mlp.py on real digits.
  const meta = JSON.parse(readFileSync(join(ROOT, 'assets/models/mnist-mlp.json'), 'utf8')) as { labels: string[] }
  const digits = await api(edgeUrl, key, '/v1/models', {
    method: 'POST',
    body: JSON.stringify({ name: 'digits', format: 'onnx', task: 'classification', labels: meta.labels, input: { shape: [-1, 784], dtype: 'float32' } }),
  })
  await api(edgeUrl, key, `/v1/models/${digits.id}/versions/1/artifact`, { method: 'PUT', body: readFileSync(join(ROOT, 'assets/models/mnist-mlp.onnx')) })
  await api(edgeUrl, key, `/v1/models/${digits.id}/versions/1`, { method: 'PATCH', body: JSON.stringify({ stage: 'production' }) })
  const demo: Demo = { MOAT_URL: edgeUrl, MOAT_API_KEY: key, MOAT_ADMIN_TOKEN: adminToken, MOAT_DEMO_MODEL: model.id, MOAT_DIGITS_MODEL: digits.id }
  writeFileSync(demoEnvPath, `${Object.entries(demo).map(([name, value]) => `${name}=${value}`).join('\n')}\n`, { mode: 0o600 })
  return demo
}

function instructions(demo: Demo, demoEnvPath: string): string {
  return `
Moat is running.
  edge    ${demo.MOAT_URL}   (OpenAPI: ${demo.MOAT_URL}/openapi.json)
  demo    ${demoEnvPath}

Try it:
  source ${demoEnvPath}
  curl -s $MOAT_URL/v1/models -H "Authorization: Bearer $MOAT_API_KEY"
  curl -s $MOAT_URL/v1/jobs -H "Authorization: Bearer $MOAT_API_KEY" \\
       -H 'content-type: application/json' -d "{\\"type\\":\\"verify_artifact\\",\\"model\\":\\"$MOAT_DEMO_MODEL\\"}"
  curl -sN $MOAT_URL/v1/jobs/<job id>/events -H "Authorization: Bearer $MOAT_API_KEY"
  curl -s $MOAT_URL/v1/models/$MOAT_DEMO_MODEL/versions/1 -H "Authorization: Bearer $MOAT_API_KEY"
  curl -s $MOAT_URL/v1/models/$MOAT_DIGITS_MODEL/predict -H "Authorization: Bearer $MOAT_API_KEY" \\
       -H 'content-type: application/json' -d @assets/digits/7.json

Ctrl-C stops the edge and the runner.
`
}

export async function main(args: string[] = []): Promise<void> {
  if (args.length > 0) {
    process.stderr.write('moat start takes no arguments; settings: MOAT_EDGE_PORT, MOAT_RUNNER_PORT, MOAT_STATE_DIR\n')
    process.exitCode = 2
    return
  }
  const settings = readStartSettings()
  mkdirSync(settings.stateDir, { recursive: true })
  const secrets = ensureDevVars()
  let edge: Edge | undefined
  let runner: Runner | undefined
  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    process.stderr.write('\nstopping Moat…\n')
    await runner?.stop()
    await edge?.stop()
    process.exit(0)
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)

  process.stderr.write('starting the edge (wrangler dev)…\n')
  // Locally, webhooks and billing sinks may point at loopback (a receiver on this machine).
  edge = await startEdge({
    port: settings.edgePort,
    persistTo: join(settings.stateDir, 'edge'),
    vars: { ...secrets, MOAT_OUTBOUND_ALLOW_LOOPBACK: 'true' },
  })
  runner = await startRunner({
    port: settings.runnerPort,
    edgeUrl: edge.url,
    secret: secrets.MOAT_RUNNER_SECRET,
    env: { MOAT_CACHE_DIR: join(settings.stateDir, 'cache') },
    echo: true,
  })
  const demoEnvPath = join(settings.stateDir, 'demo.env')
  const demo = await seedDemo(edge.url, secrets.MOAT_ADMIN_TOKEN, demoEnvPath)
  process.stdout.write(instructions(demo, demoEnvPath))
  const exited = (name: string) => () => {
    if (stopping) return
    process.stderr.write(`${name} exited unexpectedly; stopping\n`)
    void stop()
  }
  edge.child.on('exit', exited('the edge'))
  runner.child.on('exit', exited('the runner'))
}
