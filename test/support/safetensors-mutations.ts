import fc from 'fast-check'
import { encodeSafetensorsHeader, SAFETENSORS_DTYPE_SIZES, type SafetensorsDtype } from '../../src/shared/safetensors-header.ts'

// Safetensors files for fuzzing: generated files, and mutations of those and
// of the real merge fixtures (test/gpu-runner/support/safetensors-fixtures.ts) that aim at the header (the length prefix, the
// JSON, the offsets, shapes and dtypes) rather than at the tensor bytes.

const DTYPES = Object.keys(SAFETENSORS_DTYPE_SIZES) as SafetensorsDtype[]

// A valid file: random tensors laid out by the shared encoder, random data.
export const generatedFile: fc.Arbitrary<Uint8Array> = fc
  .uniqueArray(
    fc.record({
      name: fc.string({ minLength: 1, maxLength: 12 }).filter((name) => name !== '__metadata__' && name !== '__proto__'),
      dtype: fc.constantFrom(...DTYPES),
      shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }),
    }),
    { selector: (tensor) => tensor.name, maxLength: 6 },
  )
  .map((tensors) => {
    const { bytes, offsets } = encodeSafetensorsHeader(tensors, { format: 'pt' })
    const dataBytes = offsets.at(-1)?.end ?? 0
    const file = new Uint8Array(bytes.byteLength + dataBytes)
    file.set(bytes)
    for (let i = bytes.byteLength; i < file.length; i++) file[i] = (i * 31) & 0xff
    return file
  })

// The parts of a file: its length prefix, header text, and data section.
export type FileParts = { length: bigint; header: Uint8Array; data: Uint8Array }

export function split(file: Uint8Array): FileParts {
  const length = new DataView(file.buffer, file.byteOffset, 8).getBigUint64(0, true)
  const end = 8 + Number(length)
  return { length, header: file.subarray(8, end), data: file.subarray(end) }
}

export function join3(parts: FileParts): Uint8Array {
  const out = new Uint8Array(8 + parts.header.byteLength + parts.data.byteLength)
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, parts.length), true)
  out.set(parts.header, 8)
  out.set(parts.data, 8 + parts.header.byteLength)
  return out
}

const encoder = new TextEncoder()
const withHeader = (parts: FileParts, header: Uint8Array): FileParts => ({ length: BigInt(header.byteLength), header, data: parts.data })

// Numbers a crafted header might use for a dimension or an offset.
const nastyNumber = fc.oneof(
  fc.integer({ min: -5, max: 100_000 }),
  fc.constantFrom(2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 2 ** 63, 1e300, -0, 0.5, -1, Number.MAX_SAFE_INTEGER),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
)
const nastyJsonNumber = fc.oneof(
  nastyNumber.map((n) => JSON.stringify(n)),
  fc.constantFrom('1e400', '-1e400', '123456789012345678901234567890', '1.0', '1e2', '-0', '00', '1.', '.5', '+1', 'NaN', 'Infinity'),
)

type HeaderObject = Record<string, Record<string, unknown>>

function parseHeader(parts: FileParts): HeaderObject | null {
  try {
    const value: unknown = JSON.parse(new TextDecoder().decode(parts.header))
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as HeaderObject) : null
  } catch {
    return null
  }
}

function tensorNames(header: HeaderObject): string[] {
  return Object.keys(header).filter((name) => name !== '__metadata__')
}

// Rewrites the JSON text with number tokens spliced in raw, so values like
// 1e400 or 123456789012345678901234567890 reach the parser as written.
function rewrite(parts: FileParts, edit: (header: HeaderObject, raw: (text: string) => string) => void): FileParts {
  const header = parseHeader(parts)
  if (!header) return parts
  const raws: string[] = []
  const raw = (text: string) => {
    raws.push(text)
    return `\u0000RAW${raws.length - 1}\u0000`
  }
  try {
    edit(header, raw)
  } catch {
    // An earlier mutation left a header these edits do not apply to.
    return parts
  }
  const text = JSON.stringify(header).replace(/"\\u0000RAW(\d+)\\u0000"/g, (_, i: string) => raws[Number(i)]!)
  return withHeader(parts, encoder.encode(text))
}

export type Mutation = (parts: FileParts) => FileParts

// Mutations that always make a file invalid: the reader must refuse them.
export const breakingMutation: fc.Arbitrary<{ what: string; apply: Mutation }> = fc.oneof(
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((length) => ({
    what: `length prefix ${length}`,
    apply: (parts: FileParts) => (length === parts.length ? { ...parts, length: length + 1n } : { ...parts, length }),
  })),
  fc.integer({ min: 1, max: 64 }).map((cut) => ({
    what: `data cut by ${cut}`,
    apply: (parts: FileParts) => (parts.data.byteLength === 0 ? { ...parts, length: parts.length + 1n } : { ...parts, data: parts.data.subarray(0, Math.max(0, parts.data.byteLength - cut)) }),
  })),
  fc.integer({ min: 1, max: 64 }).map((extra) => ({
    what: `${extra} bytes appended`,
    apply: (parts: FileParts) => ({ ...parts, data: new Uint8Array([...parts.data, ...new Uint8Array(extra)]) }),
  })),
  fc.integer({ min: 65, max: 2000 }).map((depth) => ({
    what: `metadata nested ${depth} deep`,
    apply: (parts: FileParts) => {
      const text = new TextDecoder().decode(parts.header).trimEnd()
      return withHeader(parts, encoder.encode(`${text.slice(0, -1)},"deep":${'['.repeat(depth)}${']'.repeat(depth)}}`))
    },
  })),
  fc.tuple(fc.nat(), fc.constantFrom([0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82])).map(([at, bytes]) => ({
    what: `invalid UTF-8 ${bytes.map((b) => b.toString(16)).join(' ')}`,
    apply: (parts: FileParts) => {
      const header = new Uint8Array(parts.header)
      const i = at % Math.max(1, header.byteLength - bytes.length)
      header.set(bytes, i)
      return { ...parts, header }
    },
  })),
  fc.tuple(fc.nat(), fc.nat()).map(([i, j]) => ({
    what: 'one tensor overlapping another',
    apply: (parts: FileParts) =>
      rewrite(parts, (header) => {
        const names = tensorNames(header).filter((name) => {
          const [begin, end] = header[name]!.data_offsets as number[]
          return end! > begin!
        })
        if (names.length < 2) {
          header.extra = { dtype: 'U8', shape: [1], data_offsets: [0, 1] }
          if (names.length === 0) header.__proto_free__ = { dtype: 'U8', shape: [1], data_offsets: [0, 1] }
          return
        }
        const a = names[i % names.length]!
        const b = names[(i + 1 + (j % (names.length - 1))) % names.length]!
        header[a] = { ...header[b], dtype: header[b]!.dtype }
      }),
  })),
  fc.tuple(fc.nat(), fc.integer({ min: 1, max: 2 ** 40 })).map(([i, shift]) => ({
    what: `offsets shifted past the end by ${shift}`,
    apply: (parts: FileParts) =>
      rewrite(parts, (header) => {
        const names = tensorNames(header)
        if (names.length === 0) return void (header.x = { dtype: 'U8', shape: [shift], data_offsets: [0, shift] })
        const entry = header[names[i % names.length]!]!
        const [begin, end] = entry.data_offsets as number[]
        entry.data_offsets = [begin! + parts.data.byteLength + shift, end! + parts.data.byteLength + shift]
      }),
  })),
  fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 2, max: 1000 })).map(([i, d, factor]) => ({
    what: `a dimension times ${factor}`,
    apply: (parts: FileParts) =>
      rewrite(parts, (header) => {
        // Only a tensor with elements: times a factor, a zero count stays zero.
        const names = tensorNames(header).filter((name) => {
          const shape = header[name]!.shape as number[]
          return shape.length > 0 && shape.every((dim) => dim > 0)
        })
        if (names.length === 0) return void (header.y = { dtype: 'F32', shape: [factor], data_offsets: [0, 4] })
        const shape = header[names[i % names.length]!]!.shape as number[]
        shape[d % shape.length]! *= factor
      }),
  })),
  fc.tuple(fc.nat(), nastyJsonNumber).map(([i, number]) => ({
    what: `end offset ${number}`,
    apply: (parts: FileParts) =>
      rewrite(parts, (header, raw) => {
        const names = tensorNames(header)
        if (names.length === 0) return void (header.z = { dtype: 'F32', shape: [1], data_offsets: [0, raw(number)] })
        const entry = header[names[i % names.length]!]!
        const [begin, end] = entry.data_offsets as number[]
        // The same value written another way is not a change.
        entry.data_offsets = [begin, Number(number) === end ? raw(`${number}1`) : raw(number)]
      }),
  })),
)

// Mutations that may or may not leave a valid file (a dtype of the same
// size, a shape with the same element count): the reader must either refuse
// with a SafetensorsError or give an answer that matches the bytes.
export const anyMutation: fc.Arbitrary<{ what: string; apply: Mutation }> = fc.oneof(
  breakingMutation,
  fc.tuple(fc.nat(), fc.oneof(fc.constantFrom(...DTYPES, 'F128', 'f32', '', 'U64', 'C64'), fc.string())).map(([i, dtype]) => ({
    what: `dtype ${JSON.stringify(dtype)}`,
    apply: (parts: FileParts) =>
      rewrite(parts, (header) => {
        const names = tensorNames(header)
        if (names.length > 0) header[names[i % names.length]!]!.dtype = dtype
      }),
  })),
  fc.tuple(fc.nat(), fc.array(nastyJsonNumber, { maxLength: 4 })).map(([i, dims]) => ({
    what: `shape [${dims.join(', ')}]`,
    apply: (parts: FileParts) =>
      rewrite(parts, (header, raw) => {
        const names = tensorNames(header)
        if (names.length > 0) header[names[i % names.length]!]!.shape = dims.map(raw)
      }),
  })),
  fc.tuple(fc.nat(), fc.jsonValue({ maxDepth: 3 })).map(([i, value]) => ({
    what: `a field replaced by ${JSON.stringify(value)?.slice(0, 60)}`,
    apply: (parts: FileParts) =>
      rewrite(parts, (header) => {
        const names = [...tensorNames(header), '__metadata__']
        const name = names[i % names.length]!
        const fields = ['dtype', 'shape', 'data_offsets', 'extra', null] as const
        const field = fields[i % fields.length]
        if (field === null || field === undefined) (header as Record<string, unknown>)[name] = value
        else header[name] = { ...(header[name] ?? {}), [field]: value }
      }),
  })),
  fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([at, bytes]) => ({
    what: `header bytes overwritten with ${Array.from(bytes).join(',')}`,
    apply: (parts: FileParts) => {
      const header = new Uint8Array(parts.header)
      header.set(bytes.subarray(0, Math.max(0, header.byteLength - (at % Math.max(1, header.byteLength)))), at % Math.max(1, header.byteLength))
      return { ...parts, header }
    },
  })),
  fc.tuple(fc.nat(), fc.nat()).map(([from, to]) => ({
    what: 'a slice of the header spliced elsewhere',
    apply: (parts: FileParts) => {
      const n = parts.header.byteLength
      const a = from % Math.max(1, n)
      const b = Math.min(n, a + 1 + (to % 16))
      const at = to % Math.max(1, n)
      const header = new Uint8Array([...parts.header.subarray(0, at), ...parts.header.subarray(a, b), ...parts.header.subarray(at)])
      return withHeader(parts, header)
    },
  })),
)

export const mutations = (arbitrary: fc.Arbitrary<{ what: string; apply: Mutation }>) => fc.array(arbitrary, { minLength: 1, maxLength: 3 })
