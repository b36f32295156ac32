import { createExecutionContext, createMessageBatch, getQueueResult } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import worker from '../../src/edge/index.ts'
import { resendStaleSinkDeliveries } from '../../src/edge/billing/sink-deliveries.ts'
import { resendUntriedWebhookDeliveries } from '../../src/edge/webhooks/deliver-webhook.ts'
import { emitEvent } from '../../src/edge/webhooks/emit-event.ts'
import { buildUsageEvent, type UsageEvent } from '../../src/shared/usage-event.ts'
import { bytesOf, call, createTenant, deliver, json, putArtifact, registerModel, registerRunner, sha256Hex, type Tenant } from './helpers.ts'

// Queue consumers that fail part-way and get their batch again. Cloudflare
// Queues delivers at least once: a batch comes back, with the same message
// ids, when the consumer throws or retries it. Each test brings one tenant's
// work through a clean delivery and another's through a failed one followed
// by the redelivery, and compares what is left: job states, ledger rows and
// rollups, webhook deliveries and what endpoints received, sink deliveries and
// what providers received. Duplicates within one delivery are covered by
// jobs.test.ts, webhooks.test.ts, usage-api.test.ts and billing-sinks.test.ts;
// usage batches that crash after writing, under load, by
// test/e2e/usage-exactness.test.ts.

// Nothing reaches the real queues: their consumers would run in the
// background and, draining the sink outbox of every tenant, race the tests.
let queues: ReturnType<typeof captureQueues>
beforeEach(() => {
  queues = captureQueues()
})
afterEach(() => vi.restoreAllMocks())

type Sent = { id: string; body: unknown }

let messageCounter = 0
const messagesOf = (bodies: unknown[]): Sent[] => bodies.map((body) => ({ id: `redelivery-${++messageCounter}`, body }))

// Delivers messages as the queue would, `attempts` counting this delivery;
// a consumer that throws is reported, not rethrown, as the queue would retry.
async function deliverAgain(queue: string, messages: Sent[], attempts: number) {
  const batch = createMessageBatch(
    queue,
    messages.map(({ id, body }) => ({ id, timestamp: new Date(), attempts, body })),
  )
  const ctx = createExecutionContext()
  let thrown: unknown = null
  await Promise.resolve(worker.queue(batch, env)).catch((error: unknown) => {
    thrown = error
  })
  return { thrown, result: await getQueueResult(batch, ctx) }
}

// Makes the first D1 statement whose SQL matches throw, as a D1 outage would.
function failStatementOnce(pattern: RegExp) {
  const prepare = env.DB.prepare.bind(env.DB)
  let fired = false
  vi.spyOn(env.DB, 'prepare').mockImplementation((sql: string) => {
    if (!fired && pattern.test(sql)) {
      fired = true
      throw new Error(`injected D1 failure: ${sql.slice(0, 60)}`)
    }
    return prepare(sql)
  })
  return () => fired
}

type Received = { url: string; headers: Record<string, string>; body: string }

// An endpoint (webhook receiver or billing provider) that accepts everything.
function endpoint(): Received[] {
  const received: Received[] = []
  vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
    const request = new Request(input as RequestInfo, init as RequestInit)
    received.push({ url: request.url, headers: Object.fromEntries(request.headers), body: await request.text() })
    return new Response('{}', { status: 200 })
  })
  return received
}

async function createWebhook(tenant: Tenant, events: string[]) {
  const res = await call('/v1/webhooks', { key: tenant.adminKey, body: { url: 'http://127.0.0.1:9/hook', events } })
  expect(res.status).toBe(201)
  return json(res)
}

async function createSink(tenant: Tenant) {
  const res = await call('/v1/billing/sinks', {
    key: tenant.adminKey,
    body: { provider: 'stripe', url: 'http://127.0.0.1:9/stripe', credential: 'sk_test_redelivery', customer: 'cust_1' },
  })
  expect(res.status).toBe(201)
  return json(res)
}

// The messages a queue took: a send that was refused put nothing on it.
function sent<T>(spy: { mock: { calls: [T, ...unknown[]][]; settledResults: { type: string }[] } }): T[] {
  return spy.mock.calls.filter((_, i) => spy.mock.settledResults[i]?.type === 'fulfilled').map(([message]) => message)
}

// Whatever is put on a queue, recorded instead of sent: the test delivers it
// itself. `clear` forgets what was recorded so far.
function captureQueues() {
  const usage = vi.spyOn(env.USAGE, 'send').mockResolvedValue(undefined as never)
  const webhooks = vi.spyOn(env.WEBHOOKS, 'send').mockResolvedValue(undefined as never)
  const jobs = vi.spyOn(env.JOBS, 'send').mockResolvedValue(undefined as never)
  const sinks = vi.spyOn(env.SINKS, 'send').mockResolvedValue(undefined as never)
  return {
    usage,
    webhooks,
    jobs,
    sinks,
    usageEvents: () => sent(usage).map((event) => event as UsageEvent),
    webhookDeliveries: () => sent(webhooks).map((message) => message.delivery_id),
    sinkDeliveries: () => sent(sinks).map((message) => message.delivery_id),
    clear: () => [usage, webhooks, jobs, sinks].forEach((spy) => spy.mockClear()),
  }
}

let runnerCount = 0
async function runningJob(tenant: Tenant) {
  await env.DB.prepare(`UPDATE runners SET status = 'lost'`).run()
  const runnerId = `runner-redelivery-${++runnerCount}`
  await registerRunner(runnerId, `http://127.0.0.1:${9300 + runnerCount}`)
  const bytes = bytesOf(512, 7)
  const modelId = await registerModel(tenant, `m-${crypto.randomUUID().slice(0, 8)}`)
  await putArtifact(tenant, modelId, '1', bytes)
  const job = await json(await call('/v1/jobs', { key: tenant.adminKey, body: { type: 'verify_artifact', model: modelId } }))
  const runner = vi.spyOn(globalThis, 'fetch').mockResolvedValue(new Response(null, { status: 202 }))
  await deliver('moat-jobs', [{ job_id: job.id }])
  runner.mockRestore()
  const sha256 = await sha256Hex(bytes)
  const result = { verdict: 'verified', files: [{ name: 'model.safetensors', expected_sha256: sha256, actual_sha256: sha256, size: bytes.length, verdict: 'verified' }] }
  return { jobId: job.id as string, modelId, result }
}

// A tenant's state after the consumers' side effects have been delivered in
// turn (usage into the ledger, webhook deliveries to the endpoint), with ids
// and times taken out so that two tenants compare.
async function settledState(tenant: Tenant, jobId: string) {
  await deliver('moat-usage', queues.usageEvents())
  const received = endpoint()
  await deliver('moat-webhooks', queues.webhookDeliveries().map((delivery_id) => ({ delivery_id })))
  const job = await env.DB.prepare('SELECT status, attempts, result, error, progress_done, started_at, finished_at FROM jobs WHERE id = ?1').bind(jobId).first<any>()
  const ledger = await env.DB.prepare(`SELECT meter, value, request_id FROM usage_events WHERE tenant_id = ?1 AND meter <> 'requests' AND meter <> 'artifacts.bytes' AND meter <> 'jobs.created'`)
    .bind(tenant.tenantId)
    .all<{ meter: string; value: number; request_id: string }>()
  const rollups = await env.DB.prepare(`SELECT meter, granularity, value, events FROM usage_rollups WHERE tenant_id = ?1 AND meter = 'runner.seconds' ORDER BY granularity`)
    .bind(tenant.tenantId)
    .all()
  const deliveries = await env.DB.prepare('SELECT event_type, status, attempts FROM webhook_deliveries WHERE tenant_id = ?1')
    .bind(tenant.tenantId)
    .all()
  // Runner time is what the job's row says, whichever delivery billed it.
  const runnerSeconds = Math.max(1, Math.ceil((job.finished_at - job.started_at) / 1000))
  for (const row of ledger.results) if (row.meter === 'runner.seconds') expect(row.value).toBe(runnerSeconds)
  return {
    job: { status: job.status, attempts: job.attempts, result: job.result && JSON.parse(job.result), error: job.error && { ...JSON.parse(job.error), message: undefined } },
    ledger: ledger.results.map((row) => ({ meter: row.meter, request_id: row.request_id.replace(jobId, 'JOB') })),
    rollups: rollups.results.map((row: any) => ({ ...row, value: row.value === runnerSeconds })),
    deliveries: deliveries.results,
    received: received.map((request) => JSON.parse(request.body).type),
  }
}

describe('moat-results: a result whose follow-ups fail after the job changed', () => {
  const resultMessage = (jobId: string, report: unknown) => ({ kind: 'result', job_id: jobId, runner_id: null, report })

  async function scenario(fault: 'none' | 'webhook queue' | 'usage read', failed = false) {
    const tenant = await createTenant()
    await createWebhook(tenant, ['job.*'])
    const { jobId, result } = await runningJob(tenant)
    queues.clear()
    const report = failed ? { attempt: 1, status: 'failed', error: { message: 'out of memory', code: 'job_failed' } } : { attempt: 1, status: 'succeeded', result }
    const [message] = messagesOf([resultMessage(jobId, report)])
    if (fault === 'none') {
      await deliverAgain('moat-results', [message!], 1)
    } else {
      if (fault === 'webhook queue') queues.webhooks.mockRejectedValueOnce(new Error('injected: queue unavailable'))
      const fired = fault === 'usage read' ? failStatementOnce(/SELECT tenant_id, key_id, started_at, finished_at FROM jobs/) : () => true
      const first = await deliverAgain('moat-results', [message!], 1)
      expect(fired()).toBe(true)
      // The consumer asked for the message again; the job has already moved.
      expect(first.result.retryMessages).toEqual([expect.objectContaining({ msgId: message!.id })])
      expect((await env.DB.prepare('SELECT status FROM jobs WHERE id = ?1').bind(jobId).first())!.status).toBe(failed ? 'failed' : 'succeeded')
      const again = await deliverAgain('moat-results', [message!], 2)
      expect(again.result.explicitAcks).toEqual([message!.id])
      // And once more, as a duplicate of the redelivery.
      await deliverAgain('moat-results', [message!], 3)
    }
    return settledState(tenant, jobId)
  }

  it('bills the runner time once and queues job.succeeded once when queueing the webhook fails', async () => {
    const clean = await scenario('none')
    expect(clean.ledger).toEqual([{ meter: 'runner.seconds', request_id: 'job:JOB:1' }])
    expect(clean.deliveries).toEqual([{ event_type: 'job.succeeded', status: 'delivered', attempts: 1 }])
    expect(clean.received).toEqual(['job.succeeded'])
    expect(await scenario('webhook queue')).toEqual(clean)
  })

  it('bills the runner time once when reading the job for billing fails', async () => {
    const clean = await scenario('none')
    expect(await scenario('usage read')).toEqual(clean)
  })

  it('queues job.failed once when queueing the webhook fails after a failed result', async () => {
    const clean = await scenario('none', true)
    expect(clean.deliveries).toEqual([{ event_type: 'job.failed', status: 'delivered', attempts: 1 }])
    expect(clean.ledger).toEqual([])
    expect(await scenario('webhook queue', true)).toEqual(clean)
  })

  it('queues a released job again when queueing it failed, and once only for a plain duplicate', async () => {
    const tenant = await createTenant()
    const { jobId } = await runningJob(tenant)
    queues.clear()
    queues.jobs.mockRejectedValueOnce(new Error('injected: queue unavailable'))
    const [release] = messagesOf([{ kind: 'release', job_id: jobId, runner_id: null, report: { attempt: 1, reason: 'shutting down' } }])
    const first = await deliverAgain('moat-results', [release!], 1)
    expect(first.result.retryMessages).toHaveLength(1)
    expect(await env.DB.prepare('SELECT status, attempts FROM jobs WHERE id = ?1').bind(jobId).first()).toEqual({ status: 'queued', attempts: 1 })
    await deliverAgain('moat-results', [release!], 2)
    expect(sent(queues.jobs)).toEqual([{ job_id: jobId }])
    await deliverAgain('moat-results', messagesOf([release!.body]), 1)
    expect(sent(queues.jobs)).toHaveLength(1)
  })
})

describe('moat-jobs: a dispatch interrupted after the claim', () => {
  it('puts the job back once no dispatch can still be waiting, and dispatches it once', async () => {
    const tenant = await createTenant()
    await env.DB.prepare(`UPDATE runners SET status = 'lost'`).run()
    const runnerId = `runner-redelivery-${++runnerCount}`
    await registerRunner(runnerId, `http://127.0.0.1:${9300 + runnerCount}`)
    const modelId = await registerModel(tenant, `m-${crypto.randomUUID().slice(0, 8)}`)
    await putArtifact(tenant, modelId, '1', bytesOf(64, 3))
    const job = await json(await call('/v1/jobs', { key: tenant.adminKey, body: { type: 'verify_artifact', model: modelId } }))
    const dispatched: number[] = []
    vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
      dispatched.push(JSON.parse(await new Request(input as RequestInfo, init as RequestInit).text()).attempt)
      return new Response(null, { status: 202 })
    })
    const rowOf = () => env.DB.prepare('SELECT status, attempts, runner_id, started_at FROM jobs WHERE id = ?1').bind(job.id).first<any>()
    const messages = messagesOf([{ job_id: job.id }])

    // The claim commits, then the runner's in-flight count fails to update.
    failStatementOnce(/UPDATE runners SET in_flight = MAX\(in_flight \+ \?1/)
    expect((await deliverAgain('moat-jobs', messages, 1)).result.retryMessages).toHaveLength(1)
    expect(await rowOf()).toMatchObject({ status: 'running', attempts: 1, started_at: null })
    expect(dispatched).toEqual([])
    // Redelivered at once, it cannot tell a dispatch still waiting on the runner: it waits.
    await deliverAgain('moat-jobs', messages, 2)
    expect(dispatched).toEqual([])
    // After the runner timeout it puts the job back and dispatches it.
    await env.DB.prepare('UPDATE jobs SET updated_at = updated_at - 60000 WHERE id = ?1').bind(job.id).run()
    expect((await deliverAgain('moat-jobs', messages, 3)).result.explicitAcks).toEqual([messages[0]!.id])
    expect(dispatched).toEqual([2])
    expect(await rowOf()).toMatchObject({ status: 'running', attempts: 2, runner_id: runnerId, started_at: expect.any(Number) })
    // Once accepted, neither a duplicate nor a redelivery dispatches it again.
    await env.DB.prepare('UPDATE jobs SET updated_at = updated_at - 60000 WHERE id = ?1').bind(job.id).run()
    await deliverAgain('moat-jobs', messages, 4)
    await deliverAgain('moat-jobs', messagesOf([{ job_id: job.id }]), 1)
    expect(dispatched).toEqual([2])
  })
})

describe('moat-results: a job that runs again after its runner was lost', () => {
  it('bills the runner time of the attempt that finished it, not of the lost one', async () => {
    const tenant = await createTenant()
    const { jobId, result } = await runningJob(tenant)
    // Attempt 1 started ten minutes ago; its runner is lost and the sweep
    // (here: the runner's release) puts the job back.
    const lostStart = Date.now() - 600_000
    await env.DB.prepare('UPDATE jobs SET started_at = ?2 WHERE id = ?1').bind(jobId, lostStart).run()
    await deliver('moat-results', [{ kind: 'release', job_id: jobId, runner_id: null, report: { attempt: 1, reason: 'lost' } }])
    const secondStart = Date.now()
    const runner = vi.spyOn(globalThis, 'fetch').mockResolvedValue(new Response(null, { status: 202 }))
    await deliver('moat-jobs', [{ job_id: jobId }])
    runner.mockRestore()
    queues.clear()
    await deliver('moat-results', [{ kind: 'result', job_id: jobId, runner_id: null, report: { attempt: 2, status: 'succeeded', result } }])
    const job = await env.DB.prepare('SELECT status, attempts, started_at, finished_at FROM jobs WHERE id = ?1').bind(jobId).first<any>()
    expect(job).toMatchObject({ status: 'succeeded', attempts: 2 })
    expect(job.started_at).toBeGreaterThanOrEqual(secondStart)
    const billed = queues.usageEvents().filter((event) => event.meter === 'runner.seconds')
    expect(billed).toEqual([expect.objectContaining({ request_id: `job:${jobId}:2`, value: Math.max(1, Math.ceil((job.finished_at - job.started_at) / 1000)) })])
    expect(billed[0]!.value).toBeLessThan((job.finished_at - lostStart) / 1000)
  })
})

describe('moat-usage: a batch that fails part-way (its write, or after it), delivered again', () => {
  // `crash`: the first delivery writes, then crashes before acknowledging
  // (MOAT_CHAOS_USAGE_FAILURE_RATE); `ledger`: the first delivery's write
  // fails (after the poison message was kept).
  async function scenario(fault: 'none' | 'crash' | 'ledger') {
    const tenant = await createTenant()
    await createSink(tenant)
    const at = Date.now() - 60_000
    const events: unknown[] = []
    for (let i = 0; i < 30; i++) {
      events.push(await buildUsageEvent({ tenantId: tenant.tenantId, keyId: null, requestId: `req_${tenant.tenantId}_${i}`, meter: i % 3 === 0 ? 'predict.rows' : 'requests', value: i + 1 }, at + i))
    }
    // One poison message in the batch: kept as a dead letter, once.
    const poison = { meter: 'requests', tenant_id: tenant.tenantId, poison: true }
    const messages = messagesOf([...events.slice(0, 15), poison, ...events.slice(15)])
    queues.clear()
    if (fault === 'crash') {
      const settings = env as unknown as Record<string, string>
      const before = settings.MOAT_CHAOS_USAGE_FAILURE_RATE
      settings.MOAT_CHAOS_USAGE_FAILURE_RATE = '1'
      try {
        const first = await deliverAgain('moat-usage', messages, 1)
        expect(String(first.thrown)).toMatch(/chaos: the usage consumer crashed after writing/)
      } finally {
        if (before === undefined) delete settings.MOAT_CHAOS_USAGE_FAILURE_RATE
        else settings.MOAT_CHAOS_USAGE_FAILURE_RATE = before
      }
    }
    if (fault === 'ledger') {
      const fired = failStatementOnce(/insert into usage_events/i)
      const first = await deliverAgain('moat-usage', messages, 1)
      expect(fired()).toBe(true)
      expect(String(first.thrown)).toMatch(/injected D1 failure/)
    }
    const delivered = await deliverAgain('moat-usage', messages, fault === 'none' ? 1 : 2)
    expect(delivered.thrown).toBeNull()
    expect(delivered.result.ackAll).toBe(true)
    // A third delivery of the same batch, as if its acknowledgement was lost.
    if (fault !== 'none') await deliverAgain('moat-usage', messages, 3)

    const provider = endpoint()
    await deliver('moat-sinks', queues.sinkDeliveries().map((delivery_id) => ({ delivery_id })))
    const ledger = await env.DB.prepare('SELECT meter, value, request_id, timestamp - ?2 AS offset FROM usage_events WHERE tenant_id = ?1 ORDER BY offset')
      .bind(tenant.tenantId, at)
      .all()
    const rollups = await env.DB.prepare('SELECT meter, granularity, value, events FROM usage_rollups WHERE tenant_id = ?1 ORDER BY meter, granularity')
      .bind(tenant.tenantId)
      .all()
    const outbox = await env.DB.prepare(
      `SELECT COUNT(*) AS rows, COUNT(DISTINCT event_id) AS events, COUNT(delivery_id) AS claimed FROM sink_outbox WHERE sink_id IN (SELECT id FROM billing_sinks WHERE tenant_id = ?1)`,
    )
      .bind(tenant.tenantId)
      .first()
    const sinkDeliveries = await env.DB.prepare(`SELECT status, sent, json_array_length(event_ids) AS events FROM sink_deliveries WHERE tenant_id = ?1`)
      .bind(tenant.tenantId)
      .all()
    const deadLetters = await env.DB.prepare(`SELECT COUNT(*) AS count FROM dead_letters WHERE queue = 'moat-usage' AND body = ?1`).bind(JSON.stringify(poison)).first()
    const identifiers = provider.map((request) => new URLSearchParams(request.body).get('identifier'))
    return {
      ledger: ledger.results.map((row: any) => ({ ...row, request_id: row.request_id.replace(tenant.tenantId, 'TENANT') })),
      rollups: rollups.results,
      outbox,
      sinkDeliveries: sinkDeliveries.results,
      deadLetters,
      pushed: { requests: identifiers.length, distinct: new Set(identifiers).size },
    }
  }

  it('leaves the ledger, rollups, sink outbox, pushes and dead letters as one clean delivery does', async () => {
    const clean = await scenario('none')
    expect(clean.ledger).toHaveLength(30)
    expect(clean.outbox).toEqual({ rows: 30, events: 30, claimed: 30 })
    expect(clean.sinkDeliveries).toEqual([{ status: 'delivered', sent: 30, events: 30 }])
    expect(clean.pushed).toEqual({ requests: 30, distinct: 30 })
    expect(clean.deadLetters).toEqual({ count: 1 })
    expect(await scenario('crash')).toEqual(clean)
    expect(await scenario('ledger')).toEqual(clean)
  })
})

describe('moat-webhooks: the same delivery again', () => {
  async function pendingDelivery() {
    const tenant = await createTenant()
    const hook = await createWebhook(tenant, ['job.*'])
    const { jobId, result } = await runningJob(tenant)
    queues.clear()
    await deliver('moat-results', [{ kind: 'result', job_id: jobId, runner_id: null, report: { attempt: 1, status: 'succeeded', result } }])
    const [deliveryId] = queues.webhookDeliveries()
    queues.clear()
    return { tenant, hook, deliveryId: deliveryId! }
  }

  const logOf = async (tenant: Tenant, hookId: string) =>
    (await json(await call(`/v1/webhooks/${hookId}/deliveries`, { key: tenant.adminKey }))).data.map((d: any) => ({ id: d.id, status: d.status, attempts: d.attempts }))

  it('posts once when the same batch comes twice', async () => {
    const { tenant, hook, deliveryId } = await pendingDelivery()
    const received = endpoint()
    const messages = messagesOf([{ delivery_id: deliveryId }])
    await deliverAgain('moat-webhooks', messages, 1)
    await deliverAgain('moat-webhooks', messages, 2)
    expect(received).toHaveLength(1)
    expect(await logOf(tenant, hook.id)).toEqual([{ id: deliveryId, status: 'delivered', attempts: 1 }])
  })

  it('posts the same signed event again when recording the success failed, and keeps one delivery', async () => {
    const { tenant, hook, deliveryId } = await pendingDelivery()
    const received = endpoint()
    const messages = messagesOf([{ delivery_id: deliveryId }])
    failStatementOnce(/UPDATE webhook_deliveries SET status = \?2/)
    const first = await deliverAgain('moat-webhooks', messages, 1)
    expect(first.result.retryMessages).toHaveLength(1)
    await deliverAgain('moat-webhooks', messages, 2)
    // At least once: the endpoint saw the event twice under one webhook-id,
    // which Standard Webhooks receivers deduplicate on.
    expect(received).toHaveLength(2)
    expect(received[1]!.headers['webhook-id']).toBe(received[0]!.headers['webhook-id'])
    expect(received[1]!.body).toBe(received[0]!.body)
    const log = await logOf(tenant, hook.id)
    expect(log).toEqual([{ id: deliveryId, status: 'delivered', attempts: expect.any(Number) }])
  })
})

describe('moat-sinks: the same delivery again', () => {
  async function pendingSinkDelivery(count: number) {
    const tenant = await createTenant()
    const sink = await createSink(tenant)
    const events = []
    for (let i = 0; i < count; i++) events.push(await buildUsageEvent({ tenantId: tenant.tenantId, keyId: null, requestId: `req_${tenant.tenantId}_${i}`, meter: 'requests', value: 1 }, Date.now() - 60_000 + i))
    queues.clear()
    await deliver('moat-usage', events)
    const [deliveryId] = queues.sinkDeliveries()
    queues.clear()
    return { tenant, sink, deliveryId: deliveryId! }
  }

  const stateOf = async (tenant: Tenant, sinkId: string) => ({
    log: (await json(await call(`/v1/billing/sinks/${sinkId}/deliveries`, { key: tenant.adminKey }))).data.map((d: any) => ({ status: d.status, events: d.events, sent: d.sent })),
    outbox: await env.DB.prepare('SELECT COUNT(*) AS rows, COUNT(DISTINCT delivery_id) AS deliveries FROM sink_outbox WHERE sink_id = ?1').bind(sinkId).first(),
  })

  it('pushes each event once when the same batch comes twice', async () => {
    const { tenant, sink, deliveryId } = await pendingSinkDelivery(5)
    const provider = endpoint()
    const messages = messagesOf([{ delivery_id: deliveryId }])
    await deliverAgain('moat-sinks', messages, 1)
    await deliverAgain('moat-sinks', messages, 2)
    expect(provider).toHaveLength(5)
    expect(await stateOf(tenant, sink.id)).toEqual({ log: [{ status: 'delivered', events: 5, sent: 5 }], outbox: { rows: 5, deliveries: 1 } })
  })

  it('pushes again under the same idempotency keys when recording the success failed: the provider bills each event once', async () => {
    const { tenant, sink, deliveryId } = await pendingSinkDelivery(5)
    const provider = endpoint()
    const messages = messagesOf([{ delivery_id: deliveryId }])
    failStatementOnce(/UPDATE sink_deliveries SET status = 'delivered'/)
    const first = await deliverAgain('moat-sinks', messages, 1)
    expect(first.result.retryMessages).toHaveLength(1)
    await deliverAgain('moat-sinks', messages, 2)
    const keys = provider.map((request) => request.headers['idempotency-key'])
    expect(keys).toHaveLength(10)
    // Stripe keeps one meter event per identifier (= Idempotency-Key).
    expect(new Set(keys).size).toBe(5)
    expect(provider.map((request) => new URLSearchParams(request.body).get('identifier'))).toEqual(keys)
    expect(await stateOf(tenant, sink.id)).toEqual({ log: [{ status: 'delivered', events: 5, sent: 5 }], outbox: { rows: 5, deliveries: 1 } })
  })
})

describe('dead-letter consumers: the same message again after a failure past the commit', () => {
  it('moat-sinks-dlq: tells the tenant once that the delivery failed', async () => {
    const tenant = await createTenant()
    const hook = await createWebhook(tenant, ['usage.*'])
    const sink = await createSink(tenant)
    queues.clear()
    await deliver('moat-usage', [await buildUsageEvent({ tenantId: tenant.tenantId, keyId: null, requestId: `req_${tenant.tenantId}`, meter: 'requests', value: 1 })])
    const [deliveryId] = queues.sinkDeliveries()
    queues.webhooks.mockRejectedValueOnce(new Error('injected: queue unavailable'))
    const messages = messagesOf([{ delivery_id: deliveryId }])
    const first = await deliverAgain('moat-sinks-dlq', messages, 1)
    expect(String(first.thrown)).toMatch(/injected/)
    await deliverAgain('moat-sinks-dlq', messages, 2)
    await deliverAgain('moat-sinks-dlq', messages, 3)
    const received = endpoint()
    await deliver('moat-webhooks', queues.webhookDeliveries().map((delivery_id) => ({ delivery_id })))
    expect(received.map((request) => JSON.parse(request.body).type)).toEqual(['usage.sink_failed'])
    const log = (await json(await call(`/v1/webhooks/${hook.id}/deliveries`, { key: tenant.adminKey }))).data
    expect(log.map((d: any) => [d.event_type, d.status])).toEqual([['usage.sink_failed', 'delivered']])
    const sinkLog = (await json(await call(`/v1/billing/sinks/${sink.id}/deliveries`, { key: tenant.adminKey }))).data
    expect(sinkLog.map((d: any) => d.status)).toEqual(['failed'])
  })

  it('moat-jobs-dlq: fails the job and sends job.failed once', async () => {
    const tenant = await createTenant()
    const hook = await createWebhook(tenant, ['job.*'])
    await env.DB.prepare(`UPDATE runners SET status = 'lost'`).run()
    const modelId = await registerModel(tenant, `m-${crypto.randomUUID().slice(0, 6)}`)
    await putArtifact(tenant, modelId, '1', bytesOf(16))
    const job = await json(await call('/v1/jobs', { key: tenant.adminKey, body: { type: 'verify_artifact', model: modelId } }))
    queues.clear()
    queues.webhooks.mockRejectedValueOnce(new Error('injected: queue unavailable'))
    const messages = messagesOf([{ job_id: job.id }])
    const first = await deliverAgain('moat-jobs-dlq', messages, 1)
    expect(String(first.thrown)).toMatch(/injected/)
    await deliverAgain('moat-jobs-dlq', messages, 2)
    // A second, distinct dead letter for the same job changes nothing more.
    await deliverAgain('moat-jobs-dlq', messagesOf([{ job_id: job.id }]), 1)
    expect(queues.webhookDeliveries()).toHaveLength(1)
    const received = endpoint()
    await deliver('moat-webhooks', queues.webhookDeliveries().map((delivery_id) => ({ delivery_id })))
    expect(received.map((request) => JSON.parse(request.body).type)).toEqual(['job.failed'])
    const log = (await json(await call(`/v1/webhooks/${hook.id}/deliveries`, { key: tenant.adminKey }))).data
    expect(log.map((d: any) => [d.event_type, d.status])).toEqual([['job.failed', 'delivered']])
    expect((await json(await call(`/v1/jobs/${job.id}`, { key: tenant.adminKey }))).status).toBe('failed')
  })
})

describe('the cron sweep: messages lost, and messages in retry', () => {
  const TEN_MINUTES_AGO = () => Date.now() - 11 * 60_000

  it('sends a sink delivery whose message was lost again, and leaves one in its retries alone', async () => {
    const tenant = await createTenant()
    await createSink(tenant)
    queues.clear()
    await deliver('moat-usage', [await buildUsageEvent({ tenantId: tenant.tenantId, keyId: null, requestId: `req_${tenant.tenantId}_a`, meter: 'requests', value: 1 })])
    await deliver('moat-usage', [await buildUsageEvent({ tenantId: tenant.tenantId, keyId: null, requestId: `req_${tenant.tenantId}_b`, meter: 'requests', value: 1 })])
    const [lost, retrying] = queues.sinkDeliveries()
    // The provider is down: `retrying` is tried and waits in the queue's backoff.
    vi.spyOn(globalThis, 'fetch').mockResolvedValue(new Response('down', { status: 503 }))
    expect((await deliverAgain('moat-sinks', messagesOf([{ delivery_id: retrying }]), 1)).result.retryMessages).toHaveLength(1)
    await env.DB.prepare('UPDATE sink_deliveries SET created_at = ?2 WHERE tenant_id = ?1').bind(tenant.tenantId, TEN_MINUTES_AGO()).run()
    queues.clear()
    await resendStaleSinkDeliveries(env)
    await resendStaleSinkDeliveries(env)
    const resent = queues.sinkDeliveries()
    expect(resent.filter((id) => id === lost)).toHaveLength(2)
    expect(resent).not.toContain(retrying)
  })

  it('counts a try that failed before reaching the provider, so the sweep leaves its message to the retries', async () => {
    const tenant = await createTenant()
    await createSink(tenant)
    queues.clear()
    await deliver('moat-usage', [await buildUsageEvent({ tenantId: tenant.tenantId, keyId: null, requestId: `req_${tenant.tenantId}`, meter: 'requests', value: 1 })])
    const [deliveryId] = queues.sinkDeliveries()
    failStatementOnce(/FROM sink_deliveries d JOIN billing_sinks s/)
    expect((await deliverAgain('moat-sinks', messagesOf([{ delivery_id: deliveryId }]), 1)).result.retryMessages).toHaveLength(1)
    expect(await env.DB.prepare('SELECT status, attempts FROM sink_deliveries WHERE id = ?1').bind(deliveryId).first()).toEqual({ status: 'pending', attempts: 1 })
  })

  it('queues a webhook delivery whose message was lost, once tried never again', async () => {
    const tenant = await createTenant()
    await createWebhook(tenant, ['job.*'])
    queues.clear()
    queues.webhooks.mockRejectedValueOnce(new Error('injected: queue unavailable'))
    // An emitter that is not retried (an API request): the row is written, the message lost.
    const event = { id: `evt_lost_${tenant.tenantId}`, tenantId: tenant.tenantId, type: 'job.cancelled', data: { id: 'job_x' } }
    await expect(emitEvent(env, event)).rejects.toThrow(/injected/)
    const row = await env.DB.prepare('SELECT id, status, attempts FROM webhook_deliveries WHERE tenant_id = ?1').bind(tenant.tenantId).first<{ id: string }>()
    expect(row).toMatchObject({ status: 'pending', attempts: 0 })
    // Emitting the same event again on purpose (not a retry) does not queue it twice...
    expect(await emitEvent(env, event)).toBe(0)
    // ...the sweep does, once it is old enough.
    await resendUntriedWebhookDeliveries(env)
    expect(queues.webhookDeliveries()).not.toContain(row!.id)
    await env.DB.prepare('UPDATE webhook_deliveries SET created_at = ?2 WHERE id = ?1').bind(row!.id, TEN_MINUTES_AGO()).run()
    await resendUntriedWebhookDeliveries(env)
    expect(queues.webhookDeliveries()).toEqual([row!.id])
    const received = endpoint()
    await deliver('moat-webhooks', [{ delivery_id: row!.id }])
    expect(received.map((request) => request.headers['webhook-id'])).toEqual([event.id])
    queues.clear()
    await resendUntriedWebhookDeliveries(env)
    expect(queues.webhookDeliveries()).not.toContain(row!.id)
  })
})
