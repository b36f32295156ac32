import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

// Every safetensors file of the merge fixtures (test/fixtures/merge/models),
// as bytes: real files for the fuzzers to start from.
const FIXTURE_ROOT = new URL('../../fixtures/merge/models/', import.meta.url).pathname

export function fixtureFiles(): Uint8Array[] {
  const files: Uint8Array[] = []
  for (const dir of readdirSync(FIXTURE_ROOT)) {
    for (const name of readdirSync(join(FIXTURE_ROOT, dir))) {
      if (name.endsWith('.safetensors')) files.push(new Uint8Array(readFileSync(join(FIXTURE_ROOT, dir, name))))
    }
  }
  return files
}
