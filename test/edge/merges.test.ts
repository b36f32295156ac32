import { env } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import { bytesOf, call, createTenant, deliver, jobRow, json, putArtifact, registerModel, type Tenant } from './helpers.ts'

// POST /v1/merges: a mergekit config over registered models becomes a merge
// job; its result registers the output version with lineage and usage.

async function safetensorsModel(tenant: Tenant, name: string, seed: number) {
  const id = await registerModel(tenant, name, 'safetensors')
  expect((await putArtifact(tenant, id, '1', bytesOf(64, seed))).status).toBe(201)
  return id
}

async function postYaml(tenant: Tenant, yaml: string, query = '') {
  return call(`/v1/merges${query}`, { key: tenant.adminKey, raw: yaml, headers: { 'content-type': 'application/yaml' } })
}

const tiesYaml = (base: string, a: string, b: string) => `
merge_method: ties
base_model: ${base}
models:
  - model: ${a}
    parameters: {weight: 0.5, density: 0.5}
  - model: ${b}/1
    parameters: {weight: 0.5, density: 0.5}
`

describe('POST /v1/merges', () => {
  it('queues a merge job with every model resolved to its files', async () => {
    const tenant = await createTenant()
    const [base, a, b] = [await safetensorsModel(tenant, 'base', 1), await safetensorsModel(tenant, 'a', 2), await safetensorsModel(tenant, 'b', 3)]
    const sent = vi.spyOn(env.JOBS, 'send')
    const res = await postYaml(tenant, tiesYaml(base, a, b), '?output_version=merged-1&seed=7')
    expect(res.status).toBe(202)
    const job = await json(res)
    expect(job).toMatchObject({ object: 'job', type: 'merge', status: 'queued' })
    expect(sent).toHaveBeenCalledWith({ job_id: job.id })
    expect(job.params.output).toEqual({ model_id: base, version: 'merged-1' })
    expect(job.params.seed).toBe(7)
    expect(Object.keys(job.params.models).sort()).toEqual([a, `${b}/1`, base].sort())
    expect(job.params.models[`${b}/1`]).toMatchObject({ model_id: b, version: '1', files: [expect.objectContaining({ name: 'model.safetensors', size: 64 })] })
    expect(job.params.config.merge_method).toBe('ties')
    vi.restoreAllMocks()
  })

  it('takes the same config as JSON', async () => {
    const tenant = await createTenant()
    const a = await safetensorsModel(tenant, 'a', 2)
    const res = await call('/v1/merges', { key: tenant.adminKey, body: { merge_method: 'linear', models: [{ model: a, parameters: { weight: 1 } }] } })
    expect(res.status).toBe(202)
    expect((await json(res)).params.output.version).toMatch(/^merge-/)
  })

  it('refuses bad configs with the key path, unknown models, non-safetensors versions and taken versions', async () => {
    const tenant = await createTenant()
    const other = await createTenant('other')
    const a = await safetensorsModel(tenant, 'a', 2)
    const bad = await json(await postYaml(tenant, `merge_method: ties\nbase_model: ${a}\nmodels:\n  - model: ${a}\n    parameters: {weight: [x, {}]}\n`))
    expect(bad.error).toMatchObject({ code: 'invalid_merge_config', param: 'models[0].parameters.weight' })
    expect((await postYaml(tenant, 'merge_method: [')).status).toBe(400)
    expect((await postYaml(other, `merge_method: linear\nmodels: [{model: ${a}, parameters: {weight: 1}}]\n`)).status).toBe(404)
    const onnx = await registerModel(tenant, 'onnx-model', 'onnx')
    // A file that is not the served .onnx needs no runner to inspect it.
    await call(`/v1/models/${onnx}/versions/1/files/notes.txt`, { method: 'PUT', key: tenant.adminKey, raw: bytesOf(10) })
    const notSafetensors = await json(await postYaml(tenant, `merge_method: linear\nmodels: [{model: ${onnx}, parameters: {weight: 1}}]\n`))
    expect(notSafetensors.error.code).toBe('not_safetensors')
    const taken = await postYaml(tenant, `merge_method: linear\nmodels: [{model: ${a}, parameters: {weight: 1}}]\n`, '?output_version=1')
    expect((await json(taken)).error.code).toBe('version_exists')
    const text = await call('/v1/merges', { key: tenant.adminKey, raw: 'x', headers: { 'content-type': 'text/plain' } })
    expect(text.status).toBe(415)
  })

  it('registers the output as a staging version with its files, lineage and merge bytes, once', async () => {
    const tenant = await createTenant()
    const [base, a, b] = [await safetensorsModel(tenant, 'base', 1), await safetensorsModel(tenant, 'a', 2), await safetensorsModel(tenant, 'b', 3)]
    const job = await json(await postYaml(tenant, tiesYaml(base, a, b), '?output_version=out'))
    await env.DB.prepare(`UPDATE jobs SET status = 'running', attempts = 1, started_at = ?2 WHERE id = ?1`).bind(job.id, Date.now()).run()
    const result = {
      model_id: base,
      version: 'out',
      files: [
        { name: 'model.safetensors', artifact_key: `tenants/${tenant.tenantId}/uploads/u1/model.safetensors`, sha256: 'a'.repeat(64), size: 1000 },
        { name: 'config.json', artifact_key: `tenants/${tenant.tenantId}/uploads/u2/config.json`, sha256: 'b'.repeat(64), size: 20 },
      ],
      tensors: 30,
      input_bytes: 3000,
      output_bytes: 1000,
      runner_seconds: 1.5,
      non_finite: [],
    }
    const message = { kind: 'result', job_id: job.id, runner_id: null, report: { attempt: 1, status: 'succeeded', result } }
    await deliver('moat-results', [message])
    expect((await jobRow(job.id))!.status).toBe('succeeded')

    const version = await json(await call(`/v1/models/${base}/versions/out`, { key: tenant.adminKey }))
    expect(version).toMatchObject({ stage: 'staging', version: 'out' })
    expect(version.files.map((f: { name: string; sha256: string }) => [f.name, f.sha256])).toEqual([
      ['config.json', 'b'.repeat(64)],
      ['model.safetensors', 'a'.repeat(64)],
    ])
    const lineage = await json(await call(`/v1/models/${base}/versions/out/lineage`, { key: tenant.adminKey }))
    expect(lineage).toMatchObject({ object: 'model.lineage', job_id: job.id, config: { merge_method: 'ties' } })
    expect(lineage.inputs.find((input: { ref: string }) => input.ref === a)).toMatchObject({ model_id: a, version: '1', files: [{ name: 'model.safetensors' }] })
    expect((await call(`/v1/models/${base}/versions/1/lineage`, { key: tenant.adminKey })).status).toBe(404)

    await deliver('moat-results', [message])
    const usage = await env.DB.prepare(`SELECT value FROM usage_events WHERE tenant_id = ?1 AND meter = 'merge.bytes'`).bind(tenant.tenantId).all()
    expect(usage.results).toEqual([{ value: 3000 }])
    const versions = await env.DB.prepare(`SELECT COUNT(*) AS n FROM model_versions WHERE model_id = ?1`).bind(base).first()
    expect(versions).toEqual({ n: 2 })
  })
})
