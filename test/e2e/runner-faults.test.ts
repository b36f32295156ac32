import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'
import type { Runner } from '../../scripts/local-stack.ts'
import { loadDigits, MODEL_META, MODEL_PATH } from '../gpu-runner/inference/mnist-digits.ts'
import { startStack, tenantClient, waitFor, type Client, type Stack } from './stack.ts'
import { MERGE_FIXTURES, uploadMergeFixture } from './support/merge-fixtures.ts'

// A runner killed with SIGKILL in the middle of a job: the edge notices the
// missing heartbeats (MOAT_RUNNER_TTL_SECONDS is 3 s in the e2e stack), puts
// the job back on the queue, and another runner finishes it with an output
// byte-identical to an undisturbed run of the same job. The runner that is
// killed waits MOAT_CHAOS_STEP_DELAY_MS after each tensor or chunk of rows, so
// the kill lands mid-job whatever the machine's speed: the test kills it as
// soon as the edge shows progress, long before it could finish.

const FIXTURES = MERGE_FIXTURES
const STALL = { MOAT_CHAOS_STEP_DELAY_MS: '5000' }

let stack: Stack
let client: Client

beforeAll(async () => {
  stack = await startStack()
  client = await tenantClient(stack.edge)
})

afterAll(async () => {
  await stack?.stop()
})

type Job = { id: string; status: string; attempts: number; progress: { done: number; total: number | null; unit: string | null }; result: any; error: unknown }

const jobOf = async (id: string): Promise<Job> => (await client.call(`/v1/jobs/${id}`)).body

const finished = (id: string) =>
  waitFor(`job ${id} to finish`, async () => {
    const job = await jobOf(id)
    return ['succeeded', 'failed', 'cancelled'].includes(job.status) ? job : undefined
  })

// Runs one job on `first`, kills it once the edge has seen `unit` progress,
// and lets a fresh runner finish the job. Idle runners leave gracefully first,
// so the job can only go to `first`.
async function killMidJob(create: () => Promise<string>, unit: string) {
  for (const runner of stack.runners) await runner.stop()
  const first = await stack.startRunner(STALL)
  const id = await create()
  const midway = await waitFor('the job to make progress', async () => {
    const job = await jobOf(id)
    return job.status === 'running' && job.progress.unit === unit && job.progress.done > 0 ? job : undefined
  })
  await first.kill()
  const killedAt = Date.now()
  const second = await stack.startRunner()
  const job = await finished(id)
  const recoverySeconds = (Date.now() - killedAt) / 1000
  console.log(`fault injection: job ${id} (${unit}) finished ${recoverySeconds.toFixed(1)} s after its runner was killed at ${midway.progress.done} ${unit}`)
  return { job, midway, first, second }
}

// The ledger's events for a job (its runner time, and the merge bytes or
// prediction rows its result bills), once the usage queue has recorded them.
async function billedFor(job: Job, meters: string[]) {
  const start = Math.floor(Date.now() / 1000) - 3600
  return waitFor('the job to be billed', async () => {
    const res = await fetch(`${stack.edge.url}/v1/usage/export?format=csv&start=${start}`, { headers: { authorization: `Bearer ${client.key}` } })
    const rows = (await res.text())
      .split('\r\n')
      .slice(1)
      .filter(Boolean)
      .map((line) => line.split(','))
      .filter(([id, , , , , , , requestId]) => id!.includes(job.id) || requestId!.includes(job.id))
      .map(([, , , , meter, , value, requestId]) => ({ meter: meter!, value: Number(value), request_id: requestId!.replace(job.id, 'JOB') }))
      .sort((a, b) => a.meter.localeCompare(b.meter))
    return meters.every((meter) => rows.some((row) => row.meter === meter)) ? rows : undefined
  })
}

const ranOn = (runner: Runner, jobId: string, event: string) =>
  runner
    .output()
    .split('\n')
    .some((line) => line.includes(jobId) && line.includes(event))


const filesOf = async (modelId: string, version: string) =>
  ((await client.call(`/v1/models/${modelId}/versions/${version}`)).body.files as { name: string; sha256: string; size: number }[])
    .map(({ name, sha256, size }) => ({ name, sha256, size }))
    .sort((a, b) => a.name.localeCompare(b.name))

describe('a runner killed mid-job', () => {
  it('mid-merge: another runner finishes the merge with the same output SHA-256 as an undisturbed run', async () => {
    const ids: Record<string, string> = {}
    for (const name of ['base', 'a', 'b', 'c']) ids[name] = await uploadMergeFixture(client, name)
    const text = await readFile(join(FIXTURES, 'configs', 'ties.yml'), 'utf8')
    // Pinned to version 1: a bare model id means its newest version, and each
    // merge adds a version to the base model.
    const config = parseYaml(text.replace(/\.\.\/models\/(\w+)/g, (_, name: string) => `${ids[name]!}/1`))
    const merge = async (version: string) => {
      const created = await client.call(`/v1/merges?output_version=${version}`, { body: config })
      expect(created.status).toBe(202)
      return created.body.id as string
    }

    await stack.startRunner()
    const clean = await finished(await merge('undisturbed'))
    expect(clean.status, JSON.stringify(clean.error)).toBe('succeeded')
    expect(clean.attempts).toBe(1)

    const { job, midway, first, second } = await killMidJob(() => merge('disturbed'), 'tensors')
    expect(midway.progress.done).toBeLessThan(midway.progress.total!)
    expect(job.status, JSON.stringify(job.error)).toBe('succeeded')
    expect(job.attempts).toBeGreaterThanOrEqual(2)
    expect(ranOn(first, job.id, 'job started')).toBe(true)
    expect(ranOn(first, job.id, 'job finished')).toBe(false)
    expect(ranOn(second, job.id, 'job finished')).toBe(true)
    expect(job.progress).toEqual({ done: clean.progress.done, total: clean.progress.total, unit: 'tensors' })

    const undisturbed = await filesOf(ids.base!, 'undisturbed')
    const disturbed = await filesOf(ids.base!, 'disturbed')
    expect(undisturbed.map((file) => file.name)).toContain('model.safetensors')
    expect(disturbed).toEqual(undisturbed)
    expect(job.result.files.map((file: { sha256: string }) => file.sha256).sort()).toEqual(clean.result.files.map((file: { sha256: string }) => file.sha256).sort())
    // Billed once, for the attempt that finished: nothing for the killed one.
    expect(await billedFor(job, ['merge.bytes', 'runner.seconds'])).toEqual([
      { meter: 'merge.bytes', value: clean.result.input_bytes, request_id: expect.any(String) },
      { meter: 'runner.seconds', value: expect.any(Number), request_id: `job:JOB:${job.attempts}` },
    ])
  })

  it('mid-batch-inference: another runner finishes the batch with the same output SHA-256 as an undisturbed run', async () => {
    const model = await client.call('/v1/models', {
      body: { name: 'digits', format: 'onnx', task: 'classification', labels: MODEL_META.labels, input: { shape: [-1, 784], dtype: 'float32' } },
    })
    expect(model.status).toBe(201)
    expect((await client.call(`/v1/models/${model.body.id}/versions/1/artifact`, { method: 'PUT', raw: await readFile(MODEL_PATH) })).status).toBe(201)
    await client.call(`/v1/models/${model.body.id}/versions/1`, { method: 'PATCH', body: { stage: 'production' } })
    // 1,000 real held-out digits: four chunks of 256 rows on the runner.
    const { pixels } = loadDigits()
    const jsonl = new TextEncoder().encode(MODEL_META.test_indices.slice(0, 1000).map((i) => JSON.stringify(Array.from(pixels[i]!))).join('\n'))
    const upload = await client.call('/v1/uploads', { body: { filename: 'digits.jsonl', bytes: jsonl.length, purpose: 'batch_input' } })
    expect((await client.call(`/v1/uploads/${upload.body.id}/parts/1`, { method: 'PUT', raw: jsonl })).status).toBe(200)
    const inputSha256 = createHash('sha256').update(jsonl).digest('hex')
    expect((await client.call(`/v1/uploads/${upload.body.id}/complete`, { body: { sha256: inputSha256 } })).status).toBe(200)
    const batch = async () => {
      const created = await client.call('/v1/jobs', { body: { type: 'batch_inference', model: model.body.id, input_artifact: upload.body.id } })
      expect(created.status).toBe(202)
      return created.body.id as string
    }
    const outputSha256 = async (jobId: string) => {
      const res = await fetch(`${stack.edge.url}/v1/jobs/${jobId}/output`, { headers: { authorization: `Bearer ${client.key}` } })
      expect(res.status).toBe(200)
      return createHash('sha256').update(new Uint8Array(await res.arrayBuffer())).digest('hex')
    }

    if (stack.runners.every((runner) => runner.child.exitCode !== null || runner.child.signalCode !== null)) await stack.startRunner()
    const clean = await finished(await batch())
    expect(clean.status, JSON.stringify(clean.error)).toBe('succeeded')
    expect(clean.result.rows).toBe(1000)
    const cleanSha256 = await outputSha256(clean.id)
    expect(clean.result.output.sha256).toBe(cleanSha256)

    const { job, midway, first, second } = await killMidJob(batch, 'rows')
    expect(midway.progress.done).toBeLessThan(1000)
    expect(job.status, JSON.stringify(job.error)).toBe('succeeded')
    expect(job.attempts).toBeGreaterThanOrEqual(2)
    expect(ranOn(first, job.id, 'job finished')).toBe(false)
    expect(ranOn(second, job.id, 'job finished')).toBe(true)
    expect(job.result.rows).toBe(1000)
    expect(await outputSha256(job.id)).toBe(cleanSha256)
    expect(job.result.output.sha256).toBe(cleanSha256)
    expect(await billedFor(job, ['predict.rows', 'runner.seconds'])).toEqual([
      { meter: 'predict.rows', value: 1000, request_id: expect.any(String) },
      { meter: 'runner.seconds', value: expect.any(Number), request_id: `job:JOB:${job.attempts}` },
    ])
  })
})
