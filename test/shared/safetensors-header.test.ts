import { describe, expect, it } from 'vitest'
import {
  encodeSafetensorsHeader,
  MAX_HEADER_BYTES,
  parseSafetensorsHeader,
  readHeaderLength,
  SafetensorsError,
} from '../../src/shared/safetensors-header.ts'
import { parseSafetensorsIndex } from '../../src/shared/safetensors-index.ts'
import { parseStrictJson } from '../../src/shared/strict-json.ts'

// A header's bytes and the size of a file whose data section is `dataBytes` long.
function header(json: string, dataBytes: number) {
  const bytes = new TextEncoder().encode(json)
  return { bytes, fileSize: 8 + bytes.byteLength + dataBytes }
}

function parse(json: string, dataBytes: number) {
  const { bytes, fileSize } = header(json, dataBytes)
  return parseSafetensorsHeader(bytes, fileSize)
}

const prefixOf = (length: bigint) => {
  const bytes = new Uint8Array(8)
  new DataView(bytes.buffer).setBigUint64(0, length, true)
  return bytes
}

describe('readHeaderLength', () => {
  it('reads the little-endian length and checks it against the file', () => {
    expect(readHeaderLength(prefixOf(16n), 100)).toBe(16)
    expect(() => readHeaderLength(prefixOf(16n), 20)).toThrow(/past the end/)
    expect(() => readHeaderLength(prefixOf(BigInt(MAX_HEADER_BYTES) + 1n), 2 ** 40)).toThrow(/exceeds/)
    expect(() => readHeaderLength(prefixOf(2n ** 63n), 2 ** 40)).toThrow(/exceeds/)
    expect(() => readHeaderLength(new Uint8Array(4), 4)).toThrow(/too short/)
    expect(() => readHeaderLength(prefixOf(0n), 8)).toThrow(/too short/)
  })
})

describe('parseSafetensorsHeader', () => {
  it('accepts a well-formed header, metadata and zero-sized tensors, in data order', () => {
    const parsed = parse(
      '{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},' +
        '"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"z":{"dtype":"F16","shape":[0,3],"data_offsets":[12,12]}}  ',
      12,
    )
    expect(parsed.metadata).toEqual({ format: 'pt' })
    expect(parsed.tensors.map((t) => t.name)).toEqual(['a', 'b', 'z'])
    expect(parsed.tensors[1]).toEqual({ name: 'b', dtype: 'F32', shape: [2], begin: 4, end: 12 })
  })

  const cases: [string, string, number, RegExp][] = [
    ['a duplicate key', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4, /duplicate key "a"/],
    ['a __proto__ tensor', '{"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4, /__proto__/],
    ['an unknown dtype', '{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}', 16, /unknown dtype/],
    ['a negative dimension', '{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', 4, /non-negative/],
    ['a fractional dimension', '{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}', 4, /non-negative/],
    ['a length that differs from the shape', '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', 4, /needs 8 bytes/],
    ['an element count that overflows', '{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}', 4, /too many elements/],
    ['a byte length that overflows', '{"a":{"dtype":"F64","shape":[2251799813685248],"data_offsets":[0,4]}}', 4, /overflows/],
    ['offsets that end before they begin', '{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}', 4, /end before/],
    ['overlapping tensors', '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8, /overlaps/],
    ['a hole', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}', 12, /hole of 4 bytes/],
    ['data not starting at 0', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8, /hole/],
    ['bytes after the last tensor', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 9, /5 bytes after the last tensor/],
    ['tensors past the end of the file', '{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', 8, /need 16 data bytes/],
    ['an unknown field', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}', 4, /unknown field/],
    ['non-string metadata', '{"__metadata__":{"n":1}}', 0, /__metadata__/],
    ['a header that is not an object', '[1,2]', 0, /not a JSON object/],
    ['malformed JSON', '{"a":', 0, /not valid JSON/],
    ['trailing garbage', '{} x', 0, /not valid JSON/],
  ]
  for (const [label, json, dataBytes, message] of cases) {
    it(`refuses ${label}`, () => {
      expect(() => parse(json, dataBytes)).toThrow(SafetensorsError)
      expect(() => parse(json, dataBytes)).toThrow(message)
    })
  }

  it('refuses a header that is not UTF-8', () => {
    expect(() => parseSafetensorsHeader(new Uint8Array([0x7b, 0xff, 0x7d]), 11)).toThrow(/UTF-8/)
  })

  it('round-trips what encodeSafetensorsHeader writes, aligned to 8 bytes', () => {
    const { bytes, offsets } = encodeSafetensorsHeader([
      { name: 'x', dtype: 'BF16', shape: [3] },
      { name: 'y', dtype: 'F32', shape: [2, 2] },
    ])
    expect(bytes.byteLength % 8).toBe(0)
    expect(offsets).toEqual([{ begin: 0, end: 6 }, { begin: 6, end: 22 }])
    const length = readHeaderLength(bytes, bytes.byteLength + 22)
    const parsed = parseSafetensorsHeader(bytes.subarray(8, 8 + length), bytes.byteLength + 22)
    expect(parsed.dataOffset).toBe(bytes.byteLength)
    expect(parsed.tensors.map((t) => [t.name, t.begin, t.end])).toEqual([['x', 0, 6], ['y', 6, 22]])
  })
})

describe('parseStrictJson', () => {
  it('parses JSON into objects without a prototype', () => {
    const value = parseStrictJson('{"__proto__": {"polluted": true}, "a": [1, -2.5e3, "\\u00e9", null, false]}') as Record<string, unknown>
    expect(Object.getPrototypeOf(value)).toBeNull()
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(value.a).toEqual([1, -2500, 'é', null, false])
  })

  it('refuses deep nesting', () => {
    expect(() => parseStrictJson('['.repeat(100) + ']'.repeat(100))).toThrow(/too deep/)
  })
})

describe('parseSafetensorsIndex', () => {
  it('maps tensors to shards in first-use order', () => {
    const index = parseSafetensorsIndex('{"metadata":{"total_size":8},"weight_map":{"a":"s-2.safetensors","b":"s-1.safetensors","c":"s-2.safetensors"}}')
    expect(index.shards).toEqual(['s-2.safetensors', 's-1.safetensors'])
    expect(index.weightMap.get('b')).toBe('s-1.safetensors')
  })

  it('refuses shard names that are paths, and duplicate tensors', () => {
    expect(() => parseSafetensorsIndex('{"weight_map":{"a":"../x.safetensors"}}')).toThrow(/not a shard file name/)
    expect(() => parseSafetensorsIndex('{"weight_map":{"a":"sub/x.safetensors"}}')).toThrow(/not a shard file name/)
    expect(() => parseSafetensorsIndex('{"weight_map":{"a":"x.safetensors","a":"y.safetensors"}}')).toThrow(/duplicate key/)
    expect(() => parseSafetensorsIndex('{"metadata":{}}')).toThrow(/weight_map/)
  })
})
