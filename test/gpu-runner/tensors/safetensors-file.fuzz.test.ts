import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { SafetensorsError } from '../../../src/shared/safetensors-header.ts'
import { openSafetensorsFile } from '../../../src/gpu-runner/tensors/safetensors-file.ts'
import { fuzzSettings, fuzzTimeout } from '../../support/fuzz-settings.ts'
import { fixtureFiles } from '../support/safetensors-fixtures.ts'
import { anyMutation, breakingMutation, generatedFile, join3, mutations, split } from '../../support/safetensors-mutations.ts'

// The runner's reader (positional reads of a file on disk) on real, generated
// and mutated files: a bad file is refused with a SafetensorsError naming
// the path, a good one reads back byte for byte, and no read leaves the file.

// Three files written and read back per case: the full FUZZ_RUNS count goes
// to the pure header parser (test/shared/safetensors-header.fuzz.test.ts);
// the reader on disk gets a tenth of it.
const full = fuzzSettings(1000, process.env)
const settings = { ...full, numRuns: Math.max(100, Math.ceil(full.numRuns / 10)) }
const dir = mkdtempSync(join(tmpdir(), 'moat-safetensors-fuzz-'))
const path = join(dir, 'model.safetensors')
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const baseFile = fc.oneof(fc.constantFrom(...fixtureFiles()), generatedFile)

async function readAll(file: Uint8Array): Promise<'accepted' | 'refused'> {
  writeFileSync(path, file)
  let opened
  try {
    opened = await openSafetensorsFile(path)
  } catch (error) {
    if (!(error instanceof SafetensorsError)) throw error
    expect(error.message.startsWith(`${path}: `)).toBe(true)
    return 'refused'
  }
  try {
    for (const tensor of opened.header.tensors) {
      const bytes = await opened.readBytes(tensor)
      const start = opened.header.dataOffset + tensor.begin
      expect(Buffer.from(bytes).equals(Buffer.from(file.subarray(start, start + tensor.end - tensor.begin)))).toBe(true)
    }
    return 'accepted'
  } finally {
    await opened.close()
  }
}

describe('safetensors reader fuzzing', () => {
  it(`refuses files with a broken header and reads mutated ones exactly or refuses them (${settings.numRuns} cases)`, async () => {
    await fc.assert(
      fc.asyncProperty(baseFile, breakingMutation, mutations(anyMutation), async (file, breaking, chain) => {
        expect(await readAll(file)).toBe('accepted')
        expect(await readAll(join3(breaking.apply(split(file))))).toBe('refused')
        await readAll(join3(chain.reduce((parts, mutation) => mutation.apply(parts), split(file))))
      }),
      settings,
    )
  }, fuzzTimeout(settings, 30))
})
