import fc from 'fast-check'

// ONNX files are protobuf messages. For fuzzing, a model is read into a tree
// of fields (nested messages where ONNX's schema has them), mutated field by
// field — values, lengths, order, repeats, types — and written back, besides
// plain byte-level bit flips, truncations and splices.

type Field = { number: number; wire: number; value: bigint | Uint8Array | Field[] }
type Schema = { [field: number]: Schema }

// The nested messages of ONNX's schema that matter for loading a model.
const dimension: Schema = {}
const shape: Schema = { 1: dimension }
const tensorType: Schema = { 2: shape }
const typeProto: Schema = { 1: tensorType }
const valueInfo: Schema = { 2: typeProto }
const stringEntry: Schema = {}
const tensor: Schema = { 13: stringEntry }
const attribute: Schema = { 5: tensor }
const node: Schema = { 5: attribute }
const graph: Schema = { 1: node, 5: tensor, 11: valueInfo, 12: valueInfo, 13: valueInfo }
attribute[6] = graph
const opset: Schema = {}
export const MODEL_SCHEMA: Schema = { 7: graph, 8: opset, 14: stringEntry }

function readVarint(bytes: Uint8Array, at: number): [bigint, number] {
  let value = 0n
  let shift = 0n
  for (let i = at; i < bytes.length && i < at + 10; i++) {
    value |= BigInt(bytes[i]! & 0x7f) << shift
    shift += 7n
    if ((bytes[i]! & 0x80) === 0) return [value, i + 1]
  }
  throw new Error('bad varint')
}

function writeVarint(value: bigint, out: number[]): void {
  let v = BigInt.asUintN(64, value)
  do {
    const byte = Number(v & 0x7fn)
    v >>= 7n
    out.push(v > 0n ? byte | 0x80 : byte)
  } while (v > 0n)
}

export function decode(bytes: Uint8Array, schema: Schema): Field[] {
  const fields: Field[] = []
  let at = 0
  while (at < bytes.length) {
    const [key, next] = readVarint(bytes, at)
    at = next
    const number = Number(key >> 3n)
    const wire = Number(key & 7n)
    if (wire === 0) {
      const [value, after] = readVarint(bytes, at)
      fields.push({ number, wire, value })
      at = after
    } else if (wire === 1 || wire === 5) {
      const size = wire === 1 ? 8 : 4
      fields.push({ number, wire, value: bytes.slice(at, at + size) })
      at += size
    } else if (wire === 2) {
      const [length, after] = readVarint(bytes, at)
      const body = bytes.subarray(after, after + Number(length))
      const sub = schema[number]
      fields.push({ number, wire, value: sub ? decode(body, sub) : body.slice() })
      at = after + Number(length)
    } else {
      throw new Error(`wire type ${wire}`)
    }
  }
  return fields
}

export function encode(fields: Field[]): Uint8Array {
  const out: number[] = []
  const chunks: Uint8Array[] = []
  const flush = () => {
    if (out.length) chunks.push(Uint8Array.from(out.splice(0)))
  }
  for (const field of fields) {
    writeVarint(BigInt((field.number << 3) | field.wire), out)
    if (typeof field.value === 'bigint') writeVarint(field.value, out)
    else {
      const body = field.value instanceof Uint8Array ? field.value : encode(field.value)
      if (field.wire === 2) writeVarint(BigInt(body.byteLength), out)
      flush()
      chunks.push(body)
    }
  }
  flush()
  const total = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0)
  const bytes = new Uint8Array(total)
  let offset = 0
  for (const chunk of chunks) {
    bytes.set(chunk, offset)
    offset += chunk.byteLength
  }
  return bytes
}

// Every field of the tree with its parent list, for picking one at random.
function allFields(fields: Field[], out: { list: Field[]; index: number }[] = []): { list: Field[]; index: number }[] {
  fields.forEach((field, index) => {
    out.push({ list: fields, index })
    if (Array.isArray(field.value)) allFields(field.value, out)
  })
  return out
}

const clone = (fields: Field[]): Field[] =>
  fields.map((field) => ({ ...field, value: Array.isArray(field.value) ? clone(field.value) : field.value instanceof Uint8Array ? field.value.slice() : field.value }))

const NASTY_VARINTS = [0n, 1n, 2n, 7n, 13n, 16n, 127n, 128n, 255n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 32n, 2n ** 53n, 2n ** 62n, 2n ** 63n - 1n, 2n ** 64n - 1n]

export type OnnxMutation = { what: string; apply: (model: Uint8Array) => Uint8Array }

// Mutations of the tree: each picks a field by a random index.
const treeMutation: fc.Arbitrary<{ what: string; edit: (fields: Field[]) => void }> = fc.oneof(
  fc.tuple(fc.nat(), fc.oneof(fc.constantFrom(...NASTY_VARINTS), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }))).map(([pick, value]) => ({
    what: `a varint set to ${value}`,
    edit: (fields: Field[]) => {
      const varints = allFields(fields).filter(({ list, index }) => typeof list[index]!.value === 'bigint')
      const target = varints[pick % Math.max(1, varints.length)]
      if (target) target.list[target.index]!.value = value
    },
  })),
  fc.nat().map((pick) => ({
    what: 'a field deleted',
    edit: (fields: Field[]) => {
      const all = allFields(fields)
      const target = all[pick % all.length]!
      target.list.splice(target.index, 1)
    },
  })),
  fc.tuple(fc.nat(), fc.integer({ min: 1, max: 4 })).map(([pick, times]) => ({
    what: `a field repeated ${times} times`,
    edit: (fields: Field[]) => {
      const all = allFields(fields)
      const target = all[pick % all.length]!
      const field = target.list[target.index]!
      target.list.splice(target.index, 0, ...Array.from({ length: times }, () => clone([field])[0]!))
    },
  })),
  fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => ({
    what: 'two fields swapped',
    edit: (fields: Field[]) => {
      const all = allFields(fields)
      const x = all[a % all.length]!
      const y = all[b % all.length]!
      const fx = x.list[x.index]!
      x.list[x.index] = y.list[y.index]!
      y.list[y.index] = fx
    },
  })),
  fc.tuple(fc.nat(), fc.oneof(fc.uint8Array({ maxLength: 16 }), fc.constantFrom('', 'pixels', 'probabilities', '../../etc/passwd', 'Loop', 'If', 'Scan', 'MatMul', 'Reshape', 'ai.onnx.ml', 'com.microsoft').map((text) => new TextEncoder().encode(text)))).map(([pick, bytes]) => ({
    what: `a string set to ${JSON.stringify(new TextDecoder().decode(bytes))}`,
    edit: (fields: Field[]) => {
      const strings = allFields(fields).filter(({ list, index }) => list[index]!.value instanceof Uint8Array && list[index]!.wire === 2 && (list[index]!.value as Uint8Array).byteLength < 256)
      const target = strings[pick % Math.max(1, strings.length)]
      if (target) target.list[target.index]!.value = bytes
    },
  })),
  fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })).map(([pick, wire]) => ({
    what: `a wire type changed to ${wire}`,
    edit: (fields: Field[]) => {
      const all = allFields(fields)
      const target = all[pick % all.length]!
      const field = target.list[target.index]!
      // Only to a wire type the encoder can still write (the value's bytes follow as they are).
      if (wire === 0 && typeof field.value === 'bigint') return
      field.wire = typeof field.value === 'bigint' ? 0 : wire === 0 || wire > 5 ? 2 : wire
    },
  })),
  fc.tuple(fc.nat(), fc.constantFrom('../../../../etc/hostname', '/etc/hostname', 'missing.bin', '')).map(([pick, location]) => ({
    what: `an initializer moved to external data at ${location}`,
    edit: (fields: Field[]) => {
      const graphField = fields.find((field) => field.number === 7 && Array.isArray(field.value))
      const initializers = ((graphField?.value as Field[] | undefined) ?? []).filter((field) => field.number === 5 && Array.isArray(field.value))
      const target = initializers[pick % Math.max(1, initializers.length)]
      if (!target) return
      const body = (target.value as Field[]).filter((field) => field.number !== 9)
      const entry = (key: string, value: string): Field => ({ number: 13, wire: 2, value: [
        { number: 1, wire: 2, value: new TextEncoder().encode(key) },
        { number: 2, wire: 2, value: new TextEncoder().encode(value) },
      ] })
      body.push(entry('location', location), entry('offset', '0'), entry('length', '16'), { number: 14, wire: 0, value: 1n })
      target.value = body
    },
  })),
)

const byteMutation: fc.Arbitrary<OnnxMutation> = fc.oneof(
  fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 8 }).chain((flips) =>
    fc.boolean().map((head) => ({
      what: `${flips.length} bit flips${head ? ' in the first 2 KiB' : ''}`,
      apply: (model: Uint8Array) => {
        const out = model.slice()
        for (const [at, bit] of flips) out[at % (head ? Math.min(2048, out.length) : out.length)]! ^= 1 << bit
        return out
      },
    })),
  ),
  fc.nat().map((at) => ({ what: 'truncated', apply: (model: Uint8Array) => model.slice(0, at % model.length) })),
  fc.tuple(fc.nat(), fc.nat(), fc.nat({ max: 4096 })).map(([from, to, length]) => ({
    what: `${length} bytes spliced`,
    apply: (model: Uint8Array) => {
      const a = from % model.length
      const b = to % model.length
      return Uint8Array.from([...model.subarray(0, b), ...model.subarray(a, a + length), ...model.subarray(b)])
    },
  })),
  fc.tuple(fc.nat(), fc.integer({ min: 1, max: 8 })).map(([at, count]) => ({
    what: `${count} bytes deleted`,
    apply: (model: Uint8Array) => {
      const i = at % model.length
      return Uint8Array.from([...model.subarray(0, i), ...model.subarray(i + count)])
    },
  })),
)

export function onnxMutation(): fc.Arbitrary<OnnxMutation> {
  const tree: fc.Arbitrary<OnnxMutation> = fc.array(treeMutation, { minLength: 1, maxLength: 3 }).map((edits) => ({
    what: edits.map((edit) => edit.what).join(', '),
    apply: (model: Uint8Array) => {
      const fields = decode(model, MODEL_SCHEMA)
      for (const edit of edits) edit.edit(fields)
      return encode(fields)
    },
  }))
  return fc.oneof({ weight: 3, arbitrary: tree }, { weight: 2, arbitrary: byteMutation })
}
