import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { expect } from 'vitest'
import type { Client } from '../stack.ts'

// The merge test models and configs (scripts/merge-fixtures), as the e2e
// tests register them: one safetensors model per fixture directory.
export const MERGE_FIXTURES = join(import.meta.dirname, '../../fixtures/merge')

export async function uploadMergeFixture(client: Client, name: string): Promise<string> {
  const model = await client.call('/v1/models', { body: { name, format: 'safetensors', task: 'causal-lm' } })
  expect(model.status).toBe(201)
  const dir = join(MERGE_FIXTURES, 'models', name)
  for (const file of await readdir(dir)) {
    const put = await client.call(`/v1/models/${model.body.id}/versions/1/files/${file}`, { method: 'PUT', raw: await readFile(join(dir, file)) })
    expect(put.status, file).toBe(201)
  }
  return model.body.id as string
}
