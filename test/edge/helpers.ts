import { createExecutionContext, createMessageBatch, getQueueResult, waitOnExecutionContext, type QueueResult } from 'cloudflare:test'
import { env, exports } from 'cloudflare:workers'
import type { Env } from '../../src/edge/env.ts'
import type { AdmitRequest, SettleRequest } from '../../src/edge/guard/guard-protocol.ts'
import worker from '../../src/edge/index.ts'
import { signRunnerRequest } from '../../src/shared/runner-signature.ts'
import type { RequestObservation } from '../../src/shared/traffic/request-observation.ts'
import type { UsageEvent } from '../../src/shared/usage-event.ts'
import { readUsageMessage } from '../../src/shared/usage-message.ts'

export const ADMIN_TOKEN = 'test-admin-token'
export const RUNNER_SECRET = 'test-runner-secret'
const BASE = 'http://moat.test'

export type CallOptions = { method?: string; key?: string; body?: unknown; headers?: Record<string, string>; raw?: BodyInit }

export async function call(path: string, options: CallOptions = {}): Promise<Response> {
  const headers = new Headers(options.headers)
  if (options.key) headers.set('authorization', `Bearer ${options.key}`)
  let body: BodyInit | undefined = options.raw
  if (options.body !== undefined) {
    headers.set('content-type', 'application/json')
    body = JSON.stringify(options.body)
  }
  return exports.default.fetch(`${BASE}${path}`, { method: options.method ?? (body ? 'POST' : 'GET'), headers, body })
}

// A chat completion on route `owner` with its own bindings (the guard
// wrapped to count or slow its calls, say), its background work awaited.
export async function chatWith(bindings: Env, key: string, content: string, extra: Record<string, unknown> = {}): Promise<Response> {
  const { response, done } = await chatStarted(bindings, key, content, extra)
  await done()
  return response
}

// The same, returning as soon as the response starts: a stream's body must be
// read before the work it leaves behind (metering, the guard's report) can end.
export async function chatStarted(bindings: Env, key: string, content: string, extra: Record<string, unknown> = {}) {
  const ctx = createExecutionContext()
  const response = await worker.fetch(
    new Request(`${BASE}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'owner/gpt', messages: [{ role: 'user', content }], ...extra }),
    }),
    bindings,
    ctx,
  )
  return { response, done: () => waitOnExecutionContext(ctx) }
}

// The bindings with the guard's objects wrapped: `around` runs each call the
// edge makes to one (admit or settle) and returns its answer.
export type GuardCall = (method: 'admit' | 'settle', call: () => Promise<unknown>, request: AdmitRequest | SettleRequest) => Promise<unknown>

export function wrappedGuard(around: GuardCall): Env {
  const namespace = env.CLIENT_GUARD
  return {
    ...(env as unknown as Env),
    CLIENT_GUARD: {
      idFromName: namespace.idFromName.bind(namespace),
      get: (id: DurableObjectId) => {
        const stub = namespace.get(id)
        return {
          admit: (request: AdmitRequest) => around('admit', () => stub.admit(request), request),
          settle: (request: SettleRequest) => around('settle', () => stub.settle(request), request),
        }
      },
    },
  } as unknown as Env
}

// The id of one of the tenant's keys, from the key itself.
export async function keyIdOf(tenant: Tenant, key: string): Promise<string> {
  const keys = (await json(await call('/v1/keys', { key: tenant.adminKey }))).data as { id: string; prefix: string }[]
  return keys.find((k) => key.startsWith(k.prefix))!.id
}

// What a mocked OpenAI-style upstream answers a chat completion with.
export function completionResponse(promptTokens = 5, completionTokens = 3): Response {
  return Response.json({
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1,
    model: 'gpt',
    choices: [{ index: 0, message: { role: 'assistant', content: 'Bonjour.' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
  })
}

// Route `owner` (OpenAI-style) for the tenant, its upstream mocked by the test.
export async function createOwnerRoute(tenant: Tenant): Promise<void> {
  const res = await call('/v1/routes', { key: tenant.adminKey, body: { name: 'owner', kind: 'openai', upstream_url: 'https://upstream.example/v1' } })
  if (res.status !== 201) throw new Error(`route creation failed: ${res.status} ${await res.text()}`)
}

export async function json<T = any>(response: Response): Promise<T> {
  return (await response.json()) as T
}

export type Tenant = { tenantId: string; adminKey: string }

export async function createTenant(name = 'acme'): Promise<Tenant> {
  const res = await call('/admin/tenants', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, body: { name } })
  if (res.status !== 201) throw new Error(`tenant creation failed: ${res.status} ${await res.text()}`)
  const body = await json(res)
  return { tenantId: body.tenant.id, adminKey: body.api_key.key }
}

export async function createKey(tenant: Tenant, scopes?: string[]): Promise<string> {
  const res = await call('/v1/keys', { key: tenant.adminKey, body: { name: 'k', ...(scopes ? { scopes } : {}) } })
  if (res.status !== 201) throw new Error(`key creation failed: ${res.status} ${await res.text()}`)
  return (await json(res)).key
}

export async function registerModel(tenant: Tenant, name = 'digits', format = 'safetensors'): Promise<string> {
  const res = await call('/v1/models', { key: tenant.adminKey, body: { name, format, task: 'classification' } })
  if (res.status !== 201) throw new Error(`model registration failed: ${res.status} ${await res.text()}`)
  return (await json(res)).id
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>))
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('')
}

export function bytesOf(length: number, seed = 1): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length)
  let x = seed
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    out[i] = x >>> 24
  }
  return out
}

export async function putArtifact(tenant: Tenant, modelId: string, version: string, bytes: Uint8Array<ArrayBuffer>) {
  return call(`/v1/models/${modelId}/versions/${version}/artifact`, { method: 'PUT', key: tenant.adminKey, raw: bytes })
}

// A request on the runner channel, signed as a runner signs it.
export async function signedCall(path: string, body?: unknown, options: { method?: string; now?: number; secret?: string } = {}) {
  const method = options.method ?? (body === undefined ? 'GET' : 'POST')
  const text = body === undefined ? undefined : JSON.stringify(body)
  const headers = await signRunnerRequest({
    secret: options.secret ?? RUNNER_SECRET,
    method,
    path,
    ...(text === undefined ? {} : { body: text }),
    ...(options.now === undefined ? {} : { now: options.now }),
  })
  return {
    headers,
    send: (override: Record<string, string> = {}) =>
      exports.default.fetch(`${BASE}${path}`, {
        method,
        headers: { ...headers, 'content-type': 'application/json', ...override },
        ...(text === undefined ? {} : { body: text }),
      }),
  }
}

let messageCounter = 0

// Delivers messages to the worker's queue handler as the queue would, and
// returns what the handler acked and retried.
export async function deliver(queue: string, bodies: unknown[], attempts = 1): Promise<QueueResult> {
  const batch = createMessageBatch(
    queue,
    bodies.map((body) => ({ id: `msg-${++messageCounter}`, timestamp: new Date(), attempts, body })),
  )
  const ctx = createExecutionContext()
  await worker.queue(batch, env)
  return getQueueResult(batch, ctx)
}

export async function registerRunner(
  runnerId: string,
  url: string,
  options: { capacity?: number; running?: { job_id: string; attempt: number }[]; state?: 'active' | 'draining' } = {},
) {
  const res = await (
    await signedCall('/internal/v1/runners/register', {
      runner_id: runnerId,
      ...(options.state ? { state: options.state } : {}),
      url,
      capacity: options.capacity ?? 2,
      in_flight: 0,
      job_types: ['verify_artifact'],
      running: options.running ?? [],
    })
  ).send()
  if (res.status !== 200) throw new Error(`runner registration failed: ${res.status} ${await res.text()}`)
  return json(res)
}

export async function jobRow(id: string) {
  return env.DB.prepare('SELECT * FROM jobs WHERE id = ?1').bind(id).first<Record<string, any>>()
}

// What was sent on the usage queue, flattened: a request's usage travels as
// one message (src/shared/usage-message.ts), later events one at a time.
export function sentUsageEvents(bodies: unknown[]): UsageEvent[] {
  return bodies.flatMap((body) => readUsageMessage(body)?.events ?? [])
}

export function sentObservations(bodies: unknown[]): RequestObservation[] {
  return bodies.flatMap((body) => readUsageMessage(body)?.observations ?? [])
}
