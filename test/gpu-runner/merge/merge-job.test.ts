import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'
import type { ArtifactRef, MergeResult } from '../../../src/shared/job-types.ts'
import type { JobDispatch } from '../../../src/shared/runner-wire.ts'
import { sha256, signedPost, waitFor } from '../support/fixtures.ts'
import { resultOf, startWorld, type TestWorld } from '../support/world.ts'

// The merge job on a real runner against the fake edge: inputs come through
// the verified cache, the output goes back as multipart uploads.

const FIXTURES = join(import.meta.dirname, '../../fixtures/merge')

async function modelArtifacts(world: TestWorld, name: string): Promise<ArtifactRef[]> {
  const dir = join(FIXTURES, 'models', name)
  const refs: ArtifactRef[] = []
  for (const file of (await readdir(dir)).sort()) {
    const bytes = await readFile(join(dir, file))
    const key = `models/${name}/1/${file}`
    world.edge.artifacts.set(key, bytes)
    refs.push({ name: file, artifact_key: key, sha256: sha256(bytes), size: bytes.byteLength })
  }
  return refs
}

function mergeDispatch(jobId: string, config: unknown, models: Record<string, ArtifactRef[]>, extra: Partial<{ refuse_non_finite: boolean }> = {}): JobDispatch {
  return {
    job_id: jobId,
    type: 'merge',
    attempt: 1,
    tenant_id: 'tenant_1',
    params: {
      config,
      models: Object.fromEntries(Object.entries(models).map(([ref, files]) => [ref, { model_id: ref, version: '1', files }])),
      output: { model_id: 'mdl_base', version: 'merged' },
      seed: 0,
      refuse_non_finite: extra.refuse_non_finite ?? false,
    },
  }
}

describe('merge job', () => {
  let world: TestWorld | null = null
  afterEach(async () => {
    await world?.close()
    world = null
  })

  it('merges registered files and uploads the output, as the CLI would write it', async () => {
    world = await startWorld()
    const config = parseYaml((await readFile(join(FIXTURES, 'configs', 'ties.yml'), 'utf8')).replaceAll('../models/', 'mdl_'))
    const models = { mdl_base: await modelArtifacts(world, 'base'), mdl_a: await modelArtifacts(world, 'a'), mdl_b: await modelArtifacts(world, 'b'), mdl_c: await modelArtifacts(world, 'c') }
    const response = await signedPost(world.runner.url, '/jobs', mergeDispatch('job_merge', config, models))
    expect(response.status).toBe(202)
    await waitFor(() => resultOf(world!.edge, 'job_merge') !== undefined, 20_000, 'the merge result')
    const report = resultOf(world.edge, 'job_merge')!
    if (report.status !== 'succeeded') throw new Error(`merge failed: ${JSON.stringify(report)}`)
    const result = report.result as MergeResult
    expect(result).toMatchObject({ model_id: 'mdl_base', version: 'merged', tensors: 30, non_finite: [] })
    expect(result.files.map((file) => file.name).sort()).toEqual(['config.json', 'mergekit_config.yml', 'model.safetensors'])

    // What was uploaded is what the result names.
    const uploaded = [...world.edge.uploads.values()].filter((upload) => upload.completed)
    for (const file of result.files) {
      const upload = uploaded.find((u) => u.filename === file.name)!
      expect(sha256(Buffer.concat(upload.parts))).toBe(file.sha256)
    }
    const units = new Set(world.edge.progress.filter((p) => p.jobId === 'job_merge').map((p) => p.report.unit))
    expect([...units].sort()).toEqual(['bytes', 'tensors'])
  })

  it('fails with a clear code on a bad config or a missing input', async () => {
    world = await startWorld()
    const models = { mdl_a: await modelArtifacts(world, 'a') }
    await signedPost(world.runner.url, '/jobs', mergeDispatch('job_bad', { merge_method: 'ties', models: [{ model: 'mdl_a' }] }, models))
    const missing = models.mdl_a.map((file) => ({ ...file, artifact_key: `gone/${file.name}` }))
    await signedPost(world.runner.url, '/jobs', mergeDispatch('job_missing', { merge_method: 'linear', models: [{ model: 'mdl_a', parameters: { weight: 1 } }] }, { mdl_a: missing }))
    await waitFor(() => resultOf(world!.edge, 'job_bad') !== undefined && resultOf(world!.edge, 'job_missing') !== undefined, 10_000, 'both results')
    expect(resultOf(world.edge, 'job_bad')).toMatchObject({ status: 'failed', error: { code: 'invalid_config', message: expect.stringMatching(/base_model: ties needs a base_model/) } })
    expect(resultOf(world.edge, 'job_missing')).toMatchObject({ status: 'failed', error: { code: 'artifact_missing' } })
  })

  // The runner host picks the device; a value it does not know fails the job, never falls back silently.
  it('reads the device from MOAT_MERGE_DEVICE', async () => {
    world = await startWorld()
    const models = { mdl_a: await modelArtifacts(world, 'a') }
    const previous = process.env.MOAT_MERGE_DEVICE
    process.env.MOAT_MERGE_DEVICE = 'tpu'
    try {
      await signedPost(world.runner.url, '/jobs', mergeDispatch('job_device', { merge_method: 'linear', models: [{ model: 'mdl_a', parameters: { weight: 1 } }] }, models))
      await waitFor(() => resultOf(world!.edge, 'job_device') !== undefined, 10_000, 'the result')
    } finally {
      if (previous === undefined) delete process.env.MOAT_MERGE_DEVICE
      else process.env.MOAT_MERGE_DEVICE = previous
    }
    expect(resultOf(world.edge, 'job_device')).toMatchObject({ status: 'failed', error: { code: 'merge_failed', message: 'MOAT_MERGE_DEVICE "tpu": expected cpu or webgpu' } })
  })
})
