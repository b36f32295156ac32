import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { createDynamicBatcher } from '../src/gpu-runner/inference/dynamic-batcher.ts'
import { chooseBackend } from '../src/gpu-runner/inference/inference-backend.ts'
import { signRunnerRequest } from '../src/shared/runner-signature.ts'
import { startMiniflareEdge } from '../scripts/miniflare-edge.ts'
import { freePort, ROOT, startRunner } from '../scripts/local-stack.ts'

// Hosted inference of the demo digit classifier (784-128-10 MLP):
// 1. each backend's latency at batch 1, 32 and 256;
// 2. the onnxruntime-node backend against calling onnxruntime-node directly;
// 3. dynamic batching against none, 64 concurrent one-row clients;
// 4. predict end to end through the edge (Miniflare's socket) and a runner,
//    against the runner's own /inference/run.

const MODEL = join(ROOT, 'assets/models/mnist-mlp.onnx')
const p = (values: number[], q: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((q / 100) * values.length))]!
const ms = (value: number) => `${value.toFixed(3)} ms`

async function time(runs: number, work: () => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < 10; i++) await work()
  const samples: number[] = []
  for (let i = 0; i < runs; i++) {
    const start = performance.now()
    await work()
    samples.push(performance.now() - start)
  }
  return samples
}

const input = (rows: number) => Float32Array.from({ length: rows * 784 }, (_, i) => ((i * 7919) % 256) / 255)

console.log('bench/inference: the demo digit classifier (784-128-10 MLP), 2-core machine')
for (const name of ['node', 'wasm'] as const) {
  const backend = await chooseBackend(name)
  const model = await backend.load(MODEL)
  const cells = []
  for (const rows of [1, 32, 256]) {
    const data = input(rows)
    const samples = await time(rows === 256 ? 100 : 300, () => model.run('pixels', data, [rows, 784]))
    cells.push(`batch ${rows}: p50 ${ms(p(samples, 50))}`)
  }
  console.log(`  ${backend.name.padEnd(24)} ${cells.join(' · ')}`)
}

{
  const session = await ort.InferenceSession.create(MODEL)
  const model = await (await chooseBackend('node')).load(MODEL)
  const data = input(32)
  const direct = await time(500, () => session.run({ pixels: new ort.Tensor('float32', data, [32, 784]) }))
  const ours = await time(500, () => model.run('pixels', data, [32, 784]))
  console.log(`  onnxruntime-node at batch 32: direct p50 ${ms(p(direct, 50))}, through Moat's backend ${ms(p(ours, 50))}: ratio ${(p(ours, 50) / p(direct, 50)).toFixed(2)} (target ≤ 1.2)`)
}

{
  const model = await (await chooseBackend('node')).load(MODEL)
  const one = input(1)
  const rowsPerSecond = async (maxRows: number) => {
    const batcher = createDynamicBatcher({ maxRows, maxDelayMs: 2, maxQueuedRows: 100_000 })
    const deadline = performance.now() + 2000
    let rows = 0
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (performance.now() < deadline) {
          await batcher.submit(model, 'bench', 'pixels', one, [1, 784])
          rows++
        }
      }),
    )
    return rows / 2
  }
  const unbatched = await rowsPerSecond(1)
  const batched = await rowsPerSecond(64)
  console.log(`  64 concurrent one-row clients: unbatched ${unbatched.toFixed(0)} rows/s, batched ${batched.toFixed(0)} rows/s: ${(batched / unbatched).toFixed(1)}× (target ≥ 5×)`)
}

{
  const secret = 'bench-runner-secret'
  const edge = await startMiniflareEdge({ MOAT_ADMIN_TOKEN: 'bench', MOAT_RUNNER_SECRET: secret, MOAT_SECRETS_KEY: 'bench-secrets-key-of-32-characters-or-more' })
  const runner = await startRunner({ port: await freePort(), edgeUrl: edge.url, secret, env: { MOAT_CACHE_DIR: join('/tmp', `moat-bench-cache-${process.pid}`), MOAT_RUNNER_HEARTBEAT_MS: '1000' } })
  try {
    const api = async (path: string, token: string, init: RequestInit = {}) => {
      const res = await fetch(`${edge.url}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers } })
      if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`)
      return res.json() as Promise<any>
    }
    const tenant = await api('/admin/tenants', 'bench', { method: 'POST', body: JSON.stringify({ name: 'bench' }) })
    const key = tenant.api_key.key
    const model = await api('/v1/models', key, {
      method: 'POST',
      body: JSON.stringify({ name: 'digits', format: 'onnx', task: 'classification', input: { shape: [-1, 784], dtype: 'float32' } }),
    })
    await api(`/v1/models/${model.id}/versions/1/artifact`, key, { method: 'PUT', body: readFileSync(MODEL), headers: { 'content-type': 'application/octet-stream' } })
    await api(`/v1/models/${model.id}/versions/1`, key, { method: 'PATCH', body: JSON.stringify({ stage: 'production' }) })
    const row = Array.from(input(1))
    const body = JSON.stringify({ instances: [row] })
    const viaEdge = await time(300, async () => {
      const res = await fetch(`${edge.url}/v1/models/${model.id}/predict`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body })
      await res.arrayBuffer()
    })
    const file = (await api(`/v1/models/${model.id}/versions/1`, key)).files[0]
    const db = await edge.mf.getD1Database('DB')
    const stored = (await db.prepare('SELECT artifact_key, probe FROM model_files f JOIN model_versions v ON v.id = f.version_id WHERE v.model_id = ?1').bind(model.id).first<{ artifact_key: string; probe: string }>())!
    const runPayload = JSON.stringify({
      artifact: { name: file.name, artifact_key: stored.artifact_key, sha256: file.sha256, size: file.size },
      probe: JSON.parse(stored.probe),
      input: { name: 'pixels', dims: [1, 784], data: row },
    })
    const direct = await time(300, async () => {
      const headers = await signRunnerRequest({ secret, method: 'POST', path: '/inference/run', body: runPayload })
      const res = await fetch(`${runner.url}/inference/run`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: runPayload })
      await res.arrayBuffer()
    })
    console.log(`  predict, one row, sequential: through the edge p50 ${ms(p(viaEdge, 50))} p99 ${ms(p(viaEdge, 99))}; the runner's /inference/run alone p50 ${ms(p(direct, 50))}`)
    console.log(`  the edge and channel add ${ms(p(viaEdge, 50) - p(direct, 50))} at p50 (target ≤ 2 ms; auth, D1 look-ups, checks, signing)`)
  } finally {
    await runner.stop()
    await edge.stop()
  }
}
