import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, startEdge, startRunner, type Edge, type Runner } from '../../scripts/local-stack.ts'

export const ADMIN_TOKEN = 'e2e-admin-token'
export const RUNNER_SECRET = 'e2e-runner-secret'

// A real edge under wrangler dev with its own persisted state, and helpers to
// start runners against it and call its API.
export type Stack = {
  edge: Edge
  dir: string
  runners: Runner[]
  startRunner: (env?: Record<string, string>) => Promise<Runner>
  stop: () => Promise<void>
}

export async function startStack(vars: Record<string, string> = {}): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), 'moat-e2e-'))
  const edge = await startEdge({
    port: await freePort(),
    persistTo: join(dir, 'edge'),
    vars: {
      MOAT_ADMIN_TOKEN: ADMIN_TOKEN,
      MOAT_RUNNER_SECRET: RUNNER_SECRET,
      MOAT_SECRETS_KEY: 'e2e-secrets-key-of-at-least-32-characters',
      MOAT_OUTBOUND_ALLOW_LOOPBACK: 'true',
      MOAT_RUNNER_TTL_SECONDS: '3',
      ...vars,
    },
  })
  const runners: Runner[] = []
  let count = 0
  return {
    edge,
    dir,
    runners,
    startRunner: async (env = {}) => {
      const runner = await startRunner({
        port: await freePort(),
        edgeUrl: edge.url,
        secret: RUNNER_SECRET,
        env: { MOAT_RUNNER_HEARTBEAT_MS: '1000', MOAT_CACHE_DIR: join(dir, `cache-${++count}`), ...env },
      })
      runners.push(runner)
      return runner
    },
    stop: async () => {
      await Promise.all(runners.map((runner) => runner.kill()))
      await edge.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

export type Client = {
  key: string
  tenantId: string
  call: (path: string, init?: { method?: string; body?: unknown; raw?: Uint8Array }) => Promise<{ status: number; body: any }>
}

export async function tenantClient(edge: Edge): Promise<Client> {
  const res = await fetch(`${edge.url}/admin/tenants`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'e2e' }),
  })
  if (res.status !== 201) throw new Error(`tenant: ${res.status} ${await res.text()}`)
  const created = (await res.json()) as { tenant: { id: string }; api_key: { key: string } }
  const key = created.api_key.key
  return {
    key,
    tenantId: created.tenant.id,
    call: async (path, init = {}) => {
      const headers: Record<string, string> = { authorization: `Bearer ${key}` }
      if (init.body !== undefined) headers['content-type'] = 'application/json'
      const res = await fetch(`${edge.url}${path}`, {
        method: init.method ?? (init.body !== undefined ? 'POST' : 'GET'),
        headers,
        body: init.raw ?? (init.body !== undefined ? JSON.stringify(init.body) : undefined),
      })
      const text = await res.text()
      return { status: res.status, body: text ? JSON.parse(text) : null }
    },
  }
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const value = await probe()
    if (value !== undefined) return value
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`timed out waiting for ${what}`)
}

export function deterministicBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length)
  let x = seed >>> 0
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    out[i] = x >>> 24
  }
  return out
}
