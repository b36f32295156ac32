import { createExecutionContext, createMessageBatch, getQueueResult, waitOnExecutionContext } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import worker from '../../src/edge/index.ts'
import { QUEUE_NAMES } from '../../src/edge/queues/queue-names.ts'
import { observeRequest } from '../../src/shared/traffic/request-observation.ts'
import { buildUsageEvent } from '../../src/shared/usage-event.ts'
import { faultPlan, faultyEnv, snapshotDatabase, type FaultPlan } from './fault-injection.ts'
import { bytesOf, call, createTenant, json, putArtifact, registerModel, sha256Hex, type Tenant } from './helpers.ts'

// D1 and R2 faults on the write paths: with a fault at each storage step in
// turn, a request answers 5xx in the standard envelope with its request id,
// leaves the database (and the bucket) exactly as it found them, and a retry
// without the fault succeeds. A step that fails in best-effort bookkeeping
// after the response (a key's last use) may leave the request a success.

const BASE = 'http://moat.test'

async function send(plan: FaultPlan, request: Request): Promise<Response> {
  const ctx = createExecutionContext()
  const response = await worker.fetch(request, faultyEnv(plan), ctx)
  const body = await response.arrayBuffer()
  await waitOnExecutionContext(ctx)
  return new Response(body, response)
}

async function bucketKeys(): Promise<string[]> {
  const keys: string[] = []
  let cursor: string | undefined
  do {
    const page = await env.ARTIFACTS.list(cursor ? { cursor } : {})
    keys.push(...page.objects.map((object) => object.key))
    cursor = page.truncated ? page.cursor : undefined
  } while (cursor)
  return keys.sort()
}

type Scenario<T> = {
  setup(): Promise<T>
  request(state: T): Request
  // Every row (and object) the operation writes is there.
  verify(state: T, body: any): Promise<void>
  // Objects a cut-off operation may leave for its retry to take over.
  mayLeave?(state: T): Promise<string[]>
}

let logged: string[] = []
beforeEach(() => {
  logged = []
  vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void logged.push(args.map(String).join(' ')))
})
afterEach(() => {
  vi.restoreAllMocks()
})

function jsonRequest(path: string, key: string, body: unknown, headers: Record<string, string> = {}): Request {
  return new Request(`${BASE}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })
}

// Runs the operation with a fault at step 1, 2, ... until it has fewer steps
// than that; returns how many faults were injected.
async function faultEachStep<T>(scenario: Scenario<T>): Promise<number> {
  for (let failAt = 1; ; failAt++) {
    const state = await scenario.setup()
    const before = { rows: await snapshotDatabase(), objects: await bucketKeys() }
    const plan = faultPlan(failAt)
    const res = await send(plan, scenario.request(state))
    if (!plan.fired) {
      expect(res.status, `unfaulted run: ${await res.clone().text()}`).toBeLessThan(300)
      await scenario.verify(state, await json(res))
      console.log(`storage faults: ${expect.getState().currentTestName}: ${failAt - 1} steps, each faulted in turn`)
      return failAt - 1
    }
    const where = `fault at step ${failAt} (${plan.steps[failAt - 1]}), answered ${res.status}`
    if (res.status < 300) {
      await scenario.verify(state, await json(res))
      continue
    }
    expect(res.status, where).toBeGreaterThanOrEqual(500)
    const requestId = res.headers.get('x-request-id')
    expect(requestId, where).toMatch(/^req_/)
    const body = await json(res)
    expect(body.error, where).toMatchObject({ type: 'server_error', message: expect.stringContaining('request id') })
    // The operator's log line carries the id the client was given.
    expect(logged.some((line) => line.includes(requestId!)), where).toBe(true)
    expect(await snapshotDatabase(), where).toEqual(before.rows)
    const left = new Set(await scenario.mayLeave?.(state))
    expect((await bucketKeys()).filter((key) => !left.has(key)), where).toEqual(before.objects)

    const retry = await send(faultPlan(), scenario.request(state))
    expect(retry.status, `retry after ${where}: ${await retry.clone().text()}`).toBeLessThan(300)
    await scenario.verify(state, await json(retry))
  }
}

const row = (sql: string, ...values: unknown[]) => env.DB.prepare(sql).bind(...values).first<Record<string, any>>()

describe('storage faults on write paths', { timeout: 60_000 }, () => {
  it('creating a key (with an Idempotency-Key)', async () => {
    let n = 0
    const faults = await faultEachStep({
      setup: async () => ({ tenant: await createTenant(), idempotencyKey: `idem-${++n}` }),
      request: ({ tenant, idempotencyKey }) => jsonRequest('/v1/keys', tenant.adminKey, { name: 'ci' }, { 'idempotency-key': idempotencyKey }),
      verify: async ({ tenant }, body) => {
        expect(await row('SELECT name FROM api_keys WHERE id = ?1 AND tenant_id = ?2', body.id, tenant.tenantId)).toEqual({ name: 'ci' })
        expect((await call('/v1/models', { key: body.key })).status).toBe(200)
        expect(await row("SELECT count(*) AS n FROM idempotency_records WHERE state = 'pending'")).toEqual({ n: 0 })
      },
    })
    expect(faults).toBeGreaterThan(2)
  })

  it('registering a model', async () => {
    const faults = await faultEachStep({
      setup: async () => ({ tenant: await createTenant() }),
      request: ({ tenant }) => jsonRequest('/v1/models', tenant.adminKey, { name: 'clf', format: 'onnx', task: 'classification' }),
      verify: async ({ tenant }, body) => {
        expect(await row('SELECT name FROM models WHERE id = ?1 AND tenant_id = ?2', body.id, tenant.tenantId)).toEqual({ name: 'clf' })
      },
    })
    expect(faults).toBeGreaterThan(1)
  })

  it('putting a version artifact (R2 object, version and file rows)', async () => {
    const bytes = bytesOf(4096, 7)
    const sha256 = await sha256Hex(bytes)
    const faults = await faultEachStep({
      setup: async () => {
        const tenant = await createTenant()
        return { tenant, modelId: await registerModel(tenant, 'weights', 'safetensors') }
      },
      request: ({ tenant, modelId }) =>
        new Request(`${BASE}/v1/models/${modelId}/versions/1/artifact`, {
          method: 'PUT',
          headers: { authorization: `Bearer ${tenant.adminKey}`, 'content-length': String(bytes.length) },
          body: bytes,
        }),
      verify: async ({ modelId }, body) => {
        expect(body).toMatchObject({ sha256, size: bytes.length })
        const file = await row(
          'SELECT f.artifact_key FROM model_files f JOIN model_versions v ON v.id = f.version_id WHERE v.model_id = ?1 AND v.version = ?2',
          modelId,
          '1',
        )
        const object = await env.ARTIFACTS.get(file!.artifact_key)
        expect(await sha256Hex(new Uint8Array(await object!.arrayBuffer()))).toBe(sha256)
      },
    })
    expect(faults).toBeGreaterThan(3)
  })

  it('putting an upload part', async () => {
    const bytes = bytesOf(3000, 17)
    const faults = await faultEachStep({
      setup: async () => {
        const tenant = await createTenant()
        const upload = await json(await call('/v1/uploads', { key: tenant.adminKey, body: { filename: 'w.safetensors', bytes: bytes.length } }))
        return { tenant, uploadId: upload.id as string }
      },
      request: ({ tenant, uploadId }) =>
        new Request(`${BASE}/v1/uploads/${uploadId}/parts/1`, {
          method: 'PUT',
          headers: { authorization: `Bearer ${tenant.adminKey}`, 'content-length': String(bytes.length) },
          body: bytes,
        }),
      verify: async ({ tenant, uploadId }, body) => {
        expect(body).toMatchObject({ status: 'pending', received_bytes: bytes.length, next_part: 2 })
        const sha256 = await sha256Hex(bytes)
        const done = await call(`/v1/uploads/${uploadId}/complete`, { key: tenant.adminKey, body: { sha256 } })
        expect(await json(done)).toMatchObject({ status: 'completed', sha256 })
      },
    })
    expect(faults).toBeGreaterThan(3)
  })

  it('completing an upload', async () => {
    const bytes = bytesOf(3000, 11)
    const sha256 = await sha256Hex(bytes)
    const faults = await faultEachStep({
      setup: async () => {
        const tenant = await createTenant()
        const upload = await json(await call('/v1/uploads', { key: tenant.adminKey, body: { filename: 'w.safetensors', bytes: bytes.length } }))
        const part = await call(`/v1/uploads/${upload.id}/parts/1`, { method: 'PUT', key: tenant.adminKey, raw: bytes })
        expect(part.status).toBe(200)
        return { tenant, uploadId: upload.id as string }
      },
      request: ({ tenant, uploadId }) => jsonRequest(`/v1/uploads/${uploadId}/complete`, tenant.adminKey, { sha256 }),
      // R2 assembled the object, then the row could not say so: still pending,
      // and the retry takes the assembled object (cancel or expiry deletes it).
      mayLeave: async ({ uploadId }) => [(await row('SELECT artifact_key FROM uploads WHERE id = ?1', uploadId))!.artifact_key],
      verify: async ({ tenant, uploadId }, body) => {
        expect(body).toMatchObject({ status: 'completed', sha256 })
        const upload = await row('SELECT status, artifact_key FROM uploads WHERE id = ?1 AND tenant_id = ?2', uploadId, tenant.tenantId)
        expect(upload!.status).toBe('completed')
        const object = await env.ARTIFACTS.get(upload!.artifact_key)
        expect(await sha256Hex(new Uint8Array(await object!.arrayBuffer()))).toBe(sha256)
      },
    })
    expect(faults).toBeGreaterThan(3)
  })

  it('attaching a completed upload to a version', async () => {
    const bytes = bytesOf(2000, 13)
    const sha256 = await sha256Hex(bytes)
    const faults = await faultEachStep({
      setup: async () => {
        const tenant = await createTenant()
        const upload = await json(await call('/v1/uploads', { key: tenant.adminKey, body: { filename: 'w.safetensors', bytes: bytes.length } }))
        expect((await call(`/v1/uploads/${upload.id}/parts/1`, { method: 'PUT', key: tenant.adminKey, raw: bytes })).status).toBe(200)
        expect((await call(`/v1/uploads/${upload.id}/complete`, { key: tenant.adminKey, body: { sha256 } })).status).toBe(200)
        return { tenant, uploadId: upload.id as string, modelId: await registerModel(tenant, 'big', 'safetensors') }
      },
      request: ({ tenant, uploadId, modelId }) =>
        jsonRequest(`/v1/models/${modelId}/versions/2/files`, tenant.adminKey, { upload_id: uploadId, name: 'model.safetensors' }),
      verify: async ({ uploadId, modelId }, body) => {
        expect(body).toMatchObject({ sha256, size: bytes.length })
        expect(await row('SELECT status FROM uploads WHERE id = ?1', uploadId)).toEqual({ status: 'attached' })
        const file = await row(
          'SELECT f.sha256 FROM model_files f JOIN model_versions v ON v.id = f.version_id WHERE v.model_id = ?1 AND v.version = ?2',
          modelId,
          '2',
        )
        expect(file).toEqual({ sha256 })
      },
    })
    expect(faults).toBeGreaterThan(4)
  })

  async function modelWithFile(tenant: Tenant, name: string, seed: number) {
    const id = await registerModel(tenant, name, 'safetensors')
    expect((await putArtifact(tenant, id, '1', bytesOf(64, seed))).status).toBe(201)
    return id
  }

  it('creating a job', async () => {
    const faults = await faultEachStep({
      setup: async () => {
        const tenant = await createTenant()
        return { tenant, modelId: await modelWithFile(tenant, 'm', 3) }
      },
      request: ({ tenant, modelId }) => jsonRequest('/v1/jobs', tenant.adminKey, { type: 'verify_artifact', model: modelId }),
      verify: async ({ tenant }, body) => {
        expect(await row('SELECT status, type FROM jobs WHERE id = ?1 AND tenant_id = ?2', body.id, tenant.tenantId)).toEqual({ status: 'queued', type: 'verify_artifact' })
      },
    })
    expect(faults).toBeGreaterThan(3)
  })

  it('creating a merge', async () => {
    const faults = await faultEachStep({
      setup: async () => {
        const tenant = await createTenant()
        return { tenant, a: await modelWithFile(tenant, 'a', 4), b: await modelWithFile(tenant, 'b', 5) }
      },
      request: ({ tenant, a, b }) =>
        jsonRequest('/v1/merges', tenant.adminKey, {
          merge_method: 'linear',
          models: [
            { model: a, parameters: { weight: 0.5 } },
            { model: b, parameters: { weight: 0.5 } },
          ],
        }),
      verify: async ({ tenant }, body) => {
        expect(await row('SELECT status, type FROM jobs WHERE id = ?1 AND tenant_id = ?2', body.id, tenant.tenantId)).toEqual({ status: 'queued', type: 'merge' })
      },
    })
    expect(faults).toBeGreaterThan(3)
  })

  it('creating a webhook', async () => {
    const faults = await faultEachStep({
      setup: async () => ({ tenant: await createTenant() }),
      request: ({ tenant }) => jsonRequest('/v1/webhooks', tenant.adminKey, { url: 'https://hooks.example.com/moat', events: ['job.succeeded'] }),
      verify: async ({ tenant }, body) => {
        expect(body.secret).toMatch(/^whsec_/)
        expect(await row('SELECT url FROM webhooks WHERE id = ?1 AND tenant_id = ?2', body.id, tenant.tenantId)).toEqual({ url: 'https://hooks.example.com/moat' })
      },
    })
    expect(faults).toBeGreaterThan(1)
  })
})

describe('storage faults in the usage consumer', () => {
  let messageCounter = 0

  async function deliverUsage(plan: FaultPlan, bodies: unknown[], attempts: number) {
    const batch = createMessageBatch(
      QUEUE_NAMES.usage,
      bodies.map((body) => ({ id: `usage-fault-${++messageCounter}`, timestamp: new Date(), attempts, body })),
    )
    const ctx = createExecutionContext()
    const threw = await worker.queue(batch as MessageBatch<unknown>, faultyEnv(plan)).then(
      () => false,
      () => true,
    )
    return { threw, result: await getQueueResult(batch, ctx) }
  }

  it('a fault at any step retries the whole batch, and the ledger and the observations hold all of it or none', async () => {
    const tenant = await createTenant('ledger')
    for (let failAt = 1; ; failAt++) {
      const requestId = `req_fault_${failAt}`
      const events = await Promise.all(
        (['requests', 'tokens.input', 'tokens.output'] as const).map((meter, i) =>
          buildUsageEvent({ tenantId: tenant.tenantId, keyId: 'key_fault', requestId, meter, value: i + 1 }),
        ),
      )
      const observation = observeRequest({ requestId, tenantId: tenant.tenantId, keyId: 'key_fault', status: 200, latencyMs: 12, timestamp: Date.now() })
      const bodies = [...events, observation, { not: 'an event' }]
      const count = async () => (await row('SELECT count(*) AS n FROM usage_events WHERE request_id = ?1', requestId))!.n
      const observed = async () => (await row('SELECT count(*) AS n FROM request_observations WHERE request_id = ?1', requestId))!.n
      const plan = faultPlan(failAt)
      const first = await deliverUsage(plan, bodies, 1)
      if (!plan.fired) {
        expect(first.threw).toBe(false)
        expect([await count(), await observed()]).toEqual([3, 1])
        expect(failAt).toBeGreaterThan(2)
        return
      }
      const where = `fault at step ${failAt} (${plan.steps[failAt - 1]})`
      // Either the batch is acknowledged with everything written, or it is
      // retried (the handler threw) with nothing written.
      if (first.threw) {
        expect(first.result.ackAll, where).toBe(false)
        expect(first.result.explicitAcks, where).toEqual([])
        expect([await count(), await observed()], where).toEqual([0, 0])
      } else {
        expect(first.result.ackAll, where).toBe(true)
        expect([await count(), await observed()], where).toEqual([3, 1])
      }
      const redelivered = await deliverUsage(faultPlan(), bodies, 2)
      expect(redelivered.threw, where).toBe(false)
      expect([await count(), await observed()], where).toEqual([3, 1])
      const total = await row('SELECT sum(value) AS total FROM usage_events WHERE request_id = ?1', requestId)
      expect(total, where).toEqual({ total: 6 })
    }
  })
})
