import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  parseSafetensorsHeader,
  readHeaderLength,
  SAFETENSORS_DTYPE_SIZES,
  SafetensorsError,
  type SafetensorsHeader,
} from '../../src/shared/safetensors-header.ts'
import { fuzzSettings, fuzzTimeout } from '../support/fuzz-settings.ts'
import { fixtureFiles } from '../gpu-runner/support/safetensors-fixtures.ts'
import { anyMutation, breakingMutation, generatedFile, join3, mutations, split } from '../support/safetensors-mutations.ts'

// The shared header parser against real fixture files, generated files and
// mutations of both: it either refuses with a SafetensorsError or returns a
// layout that matches the bytes exactly. Never another exception, never a
// read outside the file.

const settings = fuzzSettings(500, process.env)
const fixtures = fixtureFiles()
const baseFile = fc.oneof(fc.constantFrom(...fixtures), generatedFile)

type Verdict = { ok: true; header: SafetensorsHeader } | { ok: false; error: SafetensorsError }

function parseFile(file: Uint8Array): Verdict {
  try {
    const length = readHeaderLength(file.subarray(0, 8), file.byteLength)
    return { ok: true, header: parseSafetensorsHeader(file.subarray(8, 8 + length), file.byteLength) }
  } catch (error) {
    if (!(error instanceof SafetensorsError)) throw error
    expect(error.message.length).toBeGreaterThan(5)
    return { ok: false, error }
  }
}

// An accepted header, checked against the file by other means than the
// parser's own: JSON.parse, products of the shape, plain arithmetic.
function expectMatchesFile(file: Uint8Array, header: SafetensorsHeader): void {
  const length = Number(new DataView(file.buffer, file.byteOffset, 8).getBigUint64(0, true))
  expect(header.dataOffset).toBe(8 + length)
  const json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(file.subarray(8, 8 + length))) as Record<string, any>
  const names = Object.keys(json).filter((name) => name !== '__metadata__')
  expect(header.tensors.map((tensor) => tensor.name).sort()).toEqual(names.sort())
  const dataBytes = file.byteLength - header.dataOffset
  let covered = 0
  for (const tensor of header.tensors) {
    // Through JSON, so that a dimension written -0 compares equal to the 0 it means.
    const described = JSON.parse(JSON.stringify({ dtype: tensor.dtype, shape: tensor.shape, data_offsets: [tensor.begin, tensor.end] }))
    expect(JSON.parse(JSON.stringify(json[tensor.name]))).toEqual(described)
    const elements = tensor.shape.reduce((product, dim) => product * dim, 1)
    // === rather than toBe: a -0 dimension makes a -0 product.
    expect(tensor.end - tensor.begin === elements * SAFETENSORS_DTYPE_SIZES[tensor.dtype]).toBe(true)
    expect(tensor.begin).toBe(covered)
    covered = tensor.end
  }
  expect(covered).toBe(dataBytes)
}

describe('safetensors header fuzzing', () => {
  it(`accepts every real and generated file as it is (${settings.numRuns} cases)`, () => {
    fc.assert(
      fc.property(baseFile, (file) => {
        const verdict = parseFile(file)
        if (!verdict.ok) throw verdict.error
        expectMatchesFile(file, verdict.header)
      }),
      settings,
    )
  }, fuzzTimeout(settings, 1))

  it(`refuses lying lengths, overlaps, out-of-range offsets, shape mismatches, huge numbers, bad UTF-8 and deep JSON (${settings.numRuns} cases)`, () => {
    fc.assert(
      fc.property(baseFile, breakingMutation, (file, mutation) => {
        const mutated = join3(mutation.apply(split(file)))
        const verdict = parseFile(mutated)
        if (verdict.ok) throw new Error(`accepted a file with ${mutation.what}`)
      }),
      settings,
    )
  }, fuzzTimeout(settings, 1))

  it(`either refuses a mutated file with a SafetensorsError or describes it exactly (${settings.numRuns} cases)`, () => {
    fc.assert(
      fc.property(baseFile, mutations(anyMutation), (file, chain) => {
        const mutated = join3(chain.reduce((parts, mutation) => mutation.apply(parts), split(file)))
        const verdict = parseFile(mutated)
        if (verdict.ok) expectMatchesFile(mutated, verdict.header)
      }),
      settings,
    )
  }, fuzzTimeout(settings, 1))

  it(`refuses random bytes with a SafetensorsError (${settings.numRuns} cases)`, () => {
    const prefixed = fc.tuple(fc.integer({ min: 0, max: 300 }), fc.uint8Array({ maxLength: 300 })).map(([length, rest]) => {
      const file = new Uint8Array(8 + rest.byteLength)
      new DataView(file.buffer).setBigUint64(0, BigInt(length), true)
      file.set(rest, 8)
      return file
    })
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), prefixed), (file) => {
        const verdict = parseFile(file)
        if (verdict.ok) expectMatchesFile(file, verdict.header)
      }),
      settings,
    )
  }, fuzzTimeout(settings, 1))
})
