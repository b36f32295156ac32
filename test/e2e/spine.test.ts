import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { deterministicBytes, startStack, tenantClient, waitFor, type Client, type Stack } from './stack.ts'

const MiB = 1024 * 1024

let stack: Stack
let client: Client

beforeAll(async () => {
  stack = await startStack()
  client = await tenantClient(stack.edge)
})

afterAll(async () => {
  await stack?.stop()
})

// Uploads a file through the multipart API (5 MiB parts) and attaches it to a
// new model's version 1; returns the model id and the file's SHA-256.
async function modelWithUploadedFile(bytes: Uint8Array) {
  const sha256 = createHash('sha256').update(bytes).digest('hex')
  const upload = await client.call('/v1/uploads', { body: { filename: 'weights.safetensors', bytes: bytes.length } })
  expect(upload.status).toBe(201)
  for (let part = 1, offset = 0; offset < bytes.length; part++, offset += 5 * MiB) {
    const res = await client.call(`/v1/uploads/${upload.body.id}/parts/${part}`, { method: 'PUT', raw: bytes.subarray(offset, offset + 5 * MiB) })
    expect(res.status, `part ${part}`).toBe(200)
  }
  const done = await client.call(`/v1/uploads/${upload.body.id}/complete`, { body: { sha256 } })
  expect(done.status).toBe(200)
  const model = await client.call('/v1/models', { body: { name: `m-${upload.body.id}`, format: 'safetensors', task: 'causal-lm' } })
  const attached = await client.call(`/v1/models/${model.body.id}/versions/1/files`, {
    body: { upload_id: upload.body.id, name: 'model.safetensors' },
  })
  expect(attached.status).toBe(201)
  return { modelId: model.body.id as string, sha256 }
}

const jobOf = async (id: string) => (await client.call(`/v1/jobs/${id}`)).body

describe('the spine, end to end', () => {
  it('refuses unsigned runner traffic', async () => {
    const res = await fetch(`${stack.edge.url}/internal/v1/runners/register`, { method: 'POST', body: '{}' })
    expect(res.status).toBe(401)
  })

  it('verifies an uploaded artifact on a runner, even when the runner is killed mid-job', async () => {
    const bytes = deterministicBytes(24 * MiB + 321, 7)
    const { modelId, sha256 } = await modelWithUploadedFile(bytes)
    // A runner capped at 4 MB/s needs about six seconds for this file.
    const slow = await stack.startRunner({ MOAT_RUNNER_MAX_BYTES_PER_SECOND: String(4 * MiB) })
    const created = await client.call('/v1/jobs', { body: { type: 'verify_artifact', model: modelId } })
    expect(created.status).toBe(202)
    const jobId = created.body.id as string

    const midway = await waitFor('the job to be part done', async () => {
      const job = await jobOf(jobId)
      return job.status === 'running' && job.progress.done > 0 ? job : undefined
    })
    expect(midway.progress.done).toBeLessThan(bytes.length)
    await slow.kill()

    await stack.startRunner()
    const finished = await waitFor('the job to finish on another runner', async () => {
      const job = await jobOf(jobId)
      return ['succeeded', 'failed', 'cancelled'].includes(job.status) ? job : undefined
    })
    expect(finished.status).toBe('succeeded')
    expect(finished.attempts).toBeGreaterThanOrEqual(2)
    expect(finished.progress).toEqual({ done: bytes.length, total: bytes.length, unit: 'bytes' })
    expect(finished.result).toEqual({
      verdict: 'verified',
      files: [{ name: 'model.safetensors', expected_sha256: sha256, actual_sha256: sha256, size: bytes.length, verdict: 'verified' }],
    })
    const version = await client.call(`/v1/models/${modelId}/versions/1`)
    expect(version.body.verification).toBe('verified')
    expect(version.body.files[0].verification).toBe('verified')
  })

  it('hands a job back on SIGTERM, and another runner finishes it', async () => {
    const bytes = deterministicBytes(12 * MiB, 11)
    const { modelId } = await modelWithUploadedFile(bytes)
    for (const runner of stack.runners) await runner.kill()
    const leaving = await stack.startRunner({ MOAT_RUNNER_MAX_BYTES_PER_SECOND: String(2 * MiB), MOAT_RUNNER_SHUTDOWN_GRACE_MS: '300' })
    const created = await client.call('/v1/jobs', { body: { type: 'verify_artifact', model: modelId } })
    const jobId = created.body.id as string
    // Attempts count dispatches: one may have gone to a runner killed earlier
    // that the edge had not yet seen go.
    const running = await waitFor('the job to run', async () => {
      const job = await jobOf(jobId)
      return job.progress.done > 0 ? job : undefined
    })
    await leaving.stop()
    expect(leaving.output()).toMatch(/released/)
    const requeued = await waitFor('the job to go back to the queue', async () => {
      const job = await jobOf(jobId)
      return job.status === 'queued' ? job : undefined
    })
    // A dispatch may meanwhile have gone to a runner killed by the previous
    // test that the edge had not yet seen go (its TTL is 3 s): that counts an
    // attempt and puts the job back too.
    expect(requeued.attempts).toBeGreaterThanOrEqual(running.attempts)
    await stack.startRunner()
    const finished = await waitFor('the job to finish', async () => {
      const job = await jobOf(jobId)
      return job.status === 'succeeded' ? job : undefined
    })
    expect(finished.attempts).toBeGreaterThan(running.attempts)
  })

  it('streams job events over SSE until the job is done', async () => {
    const bytes = deterministicBytes(6 * MiB, 13)
    const { modelId } = await modelWithUploadedFile(bytes)
    if (stack.runners.every((runner) => runner.child.exitCode !== null || runner.child.signalCode !== null)) await stack.startRunner()
    const created = await client.call('/v1/jobs', { body: { type: 'verify_artifact', model: modelId } })
    const res = await fetch(`${stack.edge.url}/v1/jobs/${created.body.id}/events`, { headers: { authorization: `Bearer ${client.key}` } })
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/)
    const text = await res.text()
    const events = text
      .split('\n\n')
      .filter((block) => block.includes('data: '))
      .map((block) => JSON.parse(block.slice(block.indexOf('data: ') + 6).split('\n')[0]!))
    expect(events.at(-1).status).toBe('succeeded')
    expect(events.every((event) => event.id === created.body.id)).toBe(true)
  })

  it('meters requests into the usage ledger exactly once each', async () => {
    const fresh = await tenantClient(stack.edge)
    const ids: string[] = []
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${stack.edge.url}/v1/models`, { headers: { authorization: `Bearer ${fresh.key}` } })
      ids.push(res.headers.get('x-request-id')!)
    }
    // The ledger is read back through D1 by the edge's own consumer; wait for the batch.
    const { execFileSync } = await import('node:child_process')
    const count = await waitFor('usage events to land', async () => {
      const out = execFileSync(
        process.execPath,
        ['node_modules/wrangler/bin/wrangler.js', 'd1', 'execute', 'DB', '--local', '--persist-to', `${stack.dir}/edge`, '--json', '--command',
          `SELECT request_id FROM usage_events WHERE request_id IN (${ids.map((id) => `'${id}'`).join(',')})`],
        { env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' } },
      ).toString()
      const rows = JSON.parse(out)[0].results as unknown[]
      return rows.length === ids.length ? rows.length : undefined
    }, 30_000)
    expect(count).toBe(5)
  })
})
