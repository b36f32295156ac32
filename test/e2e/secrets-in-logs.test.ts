import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { demoSafetensors } from '../../scripts/demo-data.ts'
import { signRunnerRequest } from '../../src/shared/runner-signature.ts'
import { startFakeUpstream, type FakeUpstream } from './support/fake-upstream.ts'
import { ADMIN_TOKEN, RUNNER_SECRET, startStack, tenantClient, waitFor, type Stack } from './stack.ts'

// What the edge and a runner write while serving (wrangler's start-up banner
// aside, which lists the local --var bindings) must hold no secret: not the
// operator's token, the runner secret, the sealing key, any API key, a
// webhook's signing secret, a sink's credential or an upstream's header, even
// when calls fail, signatures are forged and deliveries are refused.
const SECRETS_KEY = 'e2e-secrets-key-that-must-never-be-logged-0123456789'
let stack: Stack
let upstream: FakeUpstream
let refusing: Server
let refusingUrl: string
let edgeLogStart = 0

beforeAll(async () => {
  upstream = await startFakeUpstream()
  // A billing provider and webhook receiver that refuses everything, so that
  // failed deliveries get logged too.
  refusing = createServer((req, res) => {
    req.resume()
    req.on('end', () => res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"refused"}'))
  })
  await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve))
  refusingUrl = `http://127.0.0.1:${(refusing.address() as AddressInfo).port}`
  stack = await startStack({ MOAT_SECRETS_KEY: SECRETS_KEY })
  edgeLogStart = stack.edge.output().length
  await stack.startRunner()
})

afterAll(async () => {
  await stack?.stop()
  await upstream?.close()
  await new Promise((resolve) => refusing?.close(resolve))
})

it('writes no secret to the edge or runner logs', async () => {
  const tenant = await tenantClient(stack.edge)
  const key = (await tenant.call('/v1/keys', { body: { name: 'second' } })).body.key as string
  const webhook = await tenant.call('/v1/webhooks', { body: { url: `${refusingUrl}/hook`, events: ['*'] } })
  expect(webhook.status).toBe(201)
  const sinkCredential = 'sk_test_51LoggedNowhereCredential0123456789'
  const sink = await tenant.call('/v1/billing/sinks', { body: { provider: 'stripe', url: `${refusingUrl}/stripe`, credential: sinkCredential, customer: 'cus_1' } })
  expect(sink.status).toBe(201)
  const upstreamToken = 'upstream-bearer-logged-nowhere-0123456789'
  expect(
    (await tenant.call('/v1/routes', { body: { name: 'owner', kind: 'openai', upstream_url: `${upstream.url}/v1`, headers: { authorization: `Bearer ${upstreamToken}` } } })).status,
  ).toBe(201)

  // Traffic that works: a proxied chat, a job run by the runner.
  const chat = await fetch(`${stack.edge.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'owner/echo', messages: [{ role: 'user', content: 'hello there' }] }),
  })
  expect(chat.status).toBe(200)
  expect(upstream.requests.at(-1)?.headers.authorization).toBe(`Bearer ${upstreamToken}`)
  const model = (await tenant.call('/v1/models', { body: { name: 'weights', format: 'safetensors', task: 'regression' } })).body
  expect((await tenant.call(`/v1/models/${model.id}/versions/1/artifact`, { method: 'PUT', raw: demoSafetensors() })).status).toBe(201)
  const job = (await tenant.call('/v1/jobs', { body: { type: 'verify_artifact', model: model.id } })).body
  await waitFor('the job to succeed', async () => ((await tenant.call(`/v1/jobs/${job.id}`)).body.status === 'succeeded' ? true : undefined))

  // Traffic that fails: wrong keys and tokens, forged runner signatures.
  const wrongKey = `${key.slice(0, -4)}ZZZZ`
  expect((await fetch(`${stack.edge.url}/v1/models`, { headers: { authorization: `Bearer ${wrongKey}` } })).status).toBe(401)
  const wrongAdmin = await fetch(`${stack.edge.url}/admin/tenants`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}x`, 'content-type': 'application/json' }, body: '{"name":"x"}' })
  expect(wrongAdmin.status).toBe(401)
  const forged = await signRunnerRequest({ secret: `${RUNNER_SECRET}-forged`, method: 'POST', path: '/internal/v1/runners/register', body: '{}' })
  expect((await fetch(`${stack.edge.url}/internal/v1/runners/register`, { method: 'POST', headers: { ...forged, 'content-type': 'application/json' }, body: '{}' })).status).toBe(401)
  const runner = stack.runners[0]!
  const forgedJob = await signRunnerRequest({ secret: `${RUNNER_SECRET}-forged`, method: 'POST', path: '/jobs', body: '{}' })
  expect((await fetch(`${runner.url}/jobs`, { method: 'POST', headers: { ...forgedJob, 'content-type': 'application/json' }, body: '{}' })).status).toBe(401)

  // Deliveries to the refusing receiver fail and are logged as failures.
  await waitFor('a refused webhook delivery', async () => {
    const hooks = (await tenant.call(`/v1/webhooks/${webhook.body.id}/deliveries`)).body
    return hooks.data.some((delivery: { last_status: number | null }) => delivery.last_status === 500) ? true : undefined
  })

  await waitFor('a refused sink delivery', async () => {
    const sent = (await tenant.call(`/v1/billing/sinks/${sink.body.id}/deliveries`)).body
    return sent.data.some((delivery: { attempts: number }) => delivery.attempts > 0) ? true : undefined
  })

  const logs = `${stack.edge.output().slice(edgeLogStart)}\n${stack.runners.map((r) => r.output()).join('\n')}`
  expect(logs.length).toBeGreaterThan(0)
  const secrets: Record<string, string> = {
    'operator token': ADMIN_TOKEN,
    'runner secret': RUNNER_SECRET,
    'sealing key': SECRETS_KEY,
    'admin key': tenant.key.slice(12),
    'second key': key.slice(12),
    'presented wrong key': wrongKey.slice(12),
    'webhook secret': webhook.body.secret.slice('whsec_'.length),
    'sink credential': sinkCredential,
    'upstream header': upstreamToken,
  }
  for (const [name, secret] of Object.entries(secrets)) expect(logs.includes(secret), `${name} in the logs`).toBe(false)
})
