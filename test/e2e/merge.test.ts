import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'
import { parseMergeConfig } from '../../src/shared/merge-config.ts'
import { planMerge } from '../../src/gpu-runner/merge/merge-plan.ts'
import { openConfigModels, relativeTo } from '../../src/gpu-runner/merge/open-models.ts'
import { runMerge } from '../../src/gpu-runner/merge/run-merge.ts'
import { startStack, tenantClient, waitFor, type Client, type Stack } from './stack.ts'
import { MERGE_FIXTURES, uploadMergeFixture } from './support/merge-fixtures.ts'

// A merge through the whole system: models uploaded to the edge, POST
// /v1/merges, a real runner, the output registered as a version with its
// lineage, and the weights byte-identical to `moat merge` on the same files.

const FIXTURES = MERGE_FIXTURES

let stack: Stack
let client: Client
let local: string

beforeAll(async () => {
  stack = await startStack()
  client = await tenantClient(stack.edge)
  await stack.startRunner()
  local = await mkdtemp(join(tmpdir(), 'moat-e2e-merge-'))
})

afterAll(async () => {
  await stack?.stop()
  if (local) await rm(local, { recursive: true, force: true })
})


describe('merging through the service', () => {
  it('registers the merged version with lineage, with the same weights as the CLI', async () => {
    const ids: Record<string, string> = {}
    for (const name of ['base', 'a', 'b', 'c']) ids[name] = await uploadMergeFixture(client, name)
    const text = await readFile(join(FIXTURES, 'configs', 'ties.yml'), 'utf8')
    const config = parseYaml(text.replace(/\.\.\/models\/(\w+)/g, (_, name: string) => ids[name]!))

    const created = await client.call('/v1/merges?output_version=merged', { body: config })
    expect(created.status).toBe(202)
    const job = await waitFor('the merge to finish', async () => {
      const current = (await client.call(`/v1/jobs/${created.body.id}`)).body
      return current.status === 'succeeded' || current.status === 'failed' ? current : undefined
    })
    expect(job.status, JSON.stringify(job.error)).toBe('succeeded')
    expect(job.result).toMatchObject({ model_id: ids.base, version: 'merged', tensors: 30 })

    const version = (await client.call(`/v1/models/${ids.base}/versions/merged`)).body
    expect(version.stage).toBe('staging')
    const lineage = (await client.call(`/v1/models/${ids.base}/versions/merged/lineage`)).body
    expect(lineage.job_id).toBe(job.id)
    expect(lineage.inputs.map((input: { model_id: string }) => input.model_id).sort()).toEqual(Object.values(ids).sort())

    // The same merge on local files, as `moat merge` runs it.
    const parsed = parseMergeConfig(text)
    const opened = await openConfigModels(parsed, relativeTo(join(FIXTURES, 'configs')))
    try {
      await runMerge({ plan: planMerge(parsed, opened.models), outDir: local, threads: 1 })
    } finally {
      await opened.close()
    }
    const expected = createHash('sha256').update(await readFile(join(local, 'model.safetensors'))).digest('hex')
    expect(version.files.find((file: { name: string }) => file.name === 'model.safetensors').sha256).toBe(expected)
  })
})
