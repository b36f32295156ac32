import { isJsonObject, parseStrictJson, StrictJsonError, type StrictJson } from './strict-json.ts'

// The safetensors format: an 8-byte little-endian header length, a JSON header
// naming every tensor's dtype, shape and byte range, then the tensor bytes.
// Every rule is checked before a reader allocates anything a file asks for,
// so a crafted file gets a clear error rather than a huge allocation, a read
// past the end, or two tensors sharing bytes.

export const SAFETENSORS_DTYPE_SIZES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
} as const
export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPE_SIZES

// The same ceiling as the reference implementation's.
export const MAX_HEADER_BYTES = 100_000_000

export type TensorInfo = {
  name: string
  dtype: SafetensorsDtype
  shape: number[]
  // Byte range relative to the start of the data section.
  begin: number
  end: number
}

export type SafetensorsHeader = {
  // Where the data section starts in the file (8 + the header's length).
  dataOffset: number
  metadata: Record<string, string> | null
  // In data order.
  tensors: TensorInfo[]
}

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'SafetensorsError'
  }
}

export function isSafetensorsDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && Object.hasOwn(SAFETENSORS_DTYPE_SIZES, value)
}

// The header length from the file's first 8 bytes, checked against the file
// size before the header is read.
export function readHeaderLength(prefix: Uint8Array, fileSize: number): number {
  if (fileSize < 8 || prefix.byteLength < 8) throw new SafetensorsError(`file is ${fileSize} bytes, too short for a safetensors header`)
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8)
  const length = view.getBigUint64(0, true)
  if (length > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(`header length ${length} exceeds ${MAX_HEADER_BYTES} bytes`)
  const n = Number(length)
  if (8 + n > fileSize) throw new SafetensorsError(`header length ${n} runs past the end of the ${fileSize}-byte file`)
  if (n < 2) throw new SafetensorsError(`header length ${n} is too short for a JSON object`)
  return n
}

export function elementCount(shape: readonly number[], where: string): number {
  let count = 1
  for (const dim of shape) {
    count *= dim
    if (!Number.isSafeInteger(count)) throw new SafetensorsError(`${where}: shape [${shape.join(', ')}] has too many elements`)
  }
  return count
}

function parseTensor(name: string, entry: StrictJson): Omit<TensorInfo, 'name'> {
  const where = `tensor ${JSON.stringify(name)}`
  if (!isJsonObject(entry)) throw new SafetensorsError(`${where}: expected an object`)
  for (const key of Object.keys(entry)) {
    if (key !== 'dtype' && key !== 'shape' && key !== 'data_offsets') throw new SafetensorsError(`${where}: unknown field ${JSON.stringify(key)}`)
  }
  const { dtype, shape, data_offsets: offsets } = entry
  if (!isSafetensorsDtype(dtype)) throw new SafetensorsError(`${where}: unknown dtype ${JSON.stringify(dtype)}`)
  if (!Array.isArray(shape) || !shape.every((dim): dim is number => Number.isSafeInteger(dim) && (dim as number) >= 0)) {
    throw new SafetensorsError(`${where}: shape must be a list of non-negative integers`)
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((offset): offset is number => Number.isSafeInteger(offset) && (offset as number) >= 0)
  ) {
    throw new SafetensorsError(`${where}: data_offsets must be two non-negative integers`)
  }
  const [begin, end] = offsets as [number, number]
  if (end < begin) throw new SafetensorsError(`${where}: data_offsets [${begin}, ${end}] end before they begin`)
  const bytes = elementCount(shape, where) * SAFETENSORS_DTYPE_SIZES[dtype]
  if (!Number.isSafeInteger(bytes)) throw new SafetensorsError(`${where}: byte length overflows`)
  if (bytes !== end - begin) {
    throw new SafetensorsError(`${where}: ${dtype} [${shape.join(', ')}] needs ${bytes} bytes, data_offsets span ${end - begin}`)
  }
  return { dtype, shape: [...shape], begin, end }
}

// Parses and checks the header bytes (the `headerLength` bytes after the
// first 8) of a file of `fileSize` bytes.
export function parseSafetensorsHeader(headerBytes: Uint8Array, fileSize: number): SafetensorsHeader {
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(headerBytes)
  } catch {
    throw new SafetensorsError('header is not valid UTF-8')
  }
  let json: StrictJson
  try {
    json = parseStrictJson(text)
  } catch (error) {
    throw new SafetensorsError(`header is not valid JSON: ${error instanceof StrictJsonError ? error.message : String(error)}`)
  }
  if (!isJsonObject(json)) throw new SafetensorsError('header is not a JSON object')

  let metadata: Record<string, string> | null = null
  const tensors: TensorInfo[] = []
  for (const [name, entry] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isJsonObject(entry) || !Object.values(entry).every((value) => typeof value === 'string')) {
        throw new SafetensorsError('__metadata__ must map strings to strings')
      }
      metadata = Object.assign(Object.create(null) as Record<string, string>, entry)
      continue
    }
    if (name.length === 0) throw new SafetensorsError('a tensor has an empty name')
    if (name === '__proto__') throw new SafetensorsError('a tensor is named "__proto__"')
    tensors.push({ name, ...parseTensor(name, entry) })
  }

  // Zero-byte tensors sort before a tensor that starts at the same offset.
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end)
  const dataOffset = 8 + headerBytes.byteLength
  const dataBytes = fileSize - dataOffset
  let expected = 0
  for (const tensor of tensors) {
    if (tensor.begin < expected) throw new SafetensorsError(`tensor ${JSON.stringify(tensor.name)} overlaps the tensor before it (offset ${tensor.begin} < ${expected})`)
    if (tensor.begin > expected) throw new SafetensorsError(`hole of ${tensor.begin - expected} bytes before tensor ${JSON.stringify(tensor.name)} at offset ${expected}`)
    expected = tensor.end
  }
  if (expected !== dataBytes) {
    throw new SafetensorsError(
      expected > dataBytes
        ? `tensors need ${expected} data bytes, the file has ${dataBytes}`
        : `${dataBytes - expected} bytes after the last tensor`,
    )
  }
  return { dataOffset, metadata, tensors }
}

// A header for tensors laid out in the given order, padded with spaces (as
// the format allows) so the data starts 8-byte aligned.
export function encodeSafetensorsHeader(
  tensors: readonly Pick<TensorInfo, 'name' | 'dtype' | 'shape'>[],
  metadata?: Record<string, string>,
): { bytes: Uint8Array<ArrayBuffer>; offsets: { begin: number; end: number }[] } {
  // No prototype: every tensor name is an ordinary key.
  const header = Object.create(null) as Record<string, unknown>
  if (metadata) header.__metadata__ = metadata
  let offset = 0
  const offsets = tensors.map((tensor) => {
    const size = elementCount(tensor.shape, tensor.name) * SAFETENSORS_DTYPE_SIZES[tensor.dtype]
    const range = { begin: offset, end: offset + size }
    offset += size
    header[tensor.name] = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [range.begin, range.end] }
    return range
  })
  const json = new TextEncoder().encode(JSON.stringify(header))
  const padded = Math.ceil(json.byteLength / 8) * 8
  const bytes = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength)
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true)
  bytes.set(json, 8)
  return { bytes, offsets }
}
