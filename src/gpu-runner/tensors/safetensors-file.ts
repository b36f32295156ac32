import { open, type FileHandle } from 'node:fs/promises'
import {
  parseSafetensorsHeader,
  readHeaderLength,
  SAFETENSORS_DTYPE_SIZES,
  SafetensorsError,
  type SafetensorsHeader,
  type TensorInfo,
} from '../../shared/safetensors-header.ts'
import { decodeToFloat32, isReadableFloat, LITTLE_ENDIAN } from './dtype-codec.ts'

// One safetensors file, read with positional reads: the header once, then a
// tensor at a time, so memory holds only the tensor being merged.

export type SafetensorsFile = {
  path: string
  header: SafetensorsHeader
  tensors: Map<string, TensorInfo>
  readBytes(tensor: TensorInfo, into?: Uint8Array): Promise<Uint8Array>
  // Fills `into` with the tensor's bytes from `offset` on (a caller decoding elsewhere reads in large slices).
  readRange(tensor: TensorInfo, offset: number, into: Uint8Array): Promise<void>
  // Decodes a float tensor into `out` (numel long), chunk by chunk.
  readFloat32(tensor: TensorInfo, out: Float32Array): Promise<void>
  close(): Promise<void>
}

// Per read, not per file: a merge holds many files open, and reads only a few at once.
const CHUNK_BYTES = 4 << 20

async function readExactly(file: FileHandle, into: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0
  while (done < into.byteLength) {
    const { bytesRead } = await file.read(into, done, into.byteLength - done, position + done)
    if (bytesRead === 0) throw new SafetensorsError(`${path}: unexpected end of file at byte ${position + done}`)
    done += bytesRead
  }
}

export async function openSafetensorsFile(path: string): Promise<SafetensorsFile> {
  const file = await open(path, 'r')
  try {
    const { size } = await file.stat()
    const prefix = new Uint8Array(8)
    if (size >= 8) await readExactly(file, prefix, 0, path)
    const headerLength = withPath(path, () => readHeaderLength(prefix, size))
    const headerBytes = new Uint8Array(headerLength)
    await readExactly(file, headerBytes, 8, path)
    const header = withPath(path, () => parseSafetensorsHeader(headerBytes, size))
    const tensors = new Map(header.tensors.map((tensor) => [tensor.name, tensor]))

    return {
      path,
      header,
      tensors,
      async readBytes(tensor, into) {
        const bytes = into ?? new Uint8Array(tensor.end - tensor.begin)
        await readExactly(file, bytes.subarray(0, tensor.end - tensor.begin), header.dataOffset + tensor.begin, path)
        return bytes
      },
      async readRange(tensor, offset, into) {
        if (offset < 0 || offset + into.byteLength > tensor.end - tensor.begin) throw new RangeError(`read past the end of tensor ${tensor.name}`)
        await readExactly(file, into, header.dataOffset + tensor.begin + offset, path)
      },
      async readFloat32(tensor, out) {
        const { dtype } = tensor
        if (!isReadableFloat(dtype)) throw new SafetensorsError(`${path}: tensor ${tensor.name} is ${dtype}, not a float dtype`)
        const total = tensor.end - tensor.begin
        const elementBytes = SAFETENSORS_DTYPE_SIZES[dtype]
        if (out.length * elementBytes < total) throw new RangeError(`tensor ${tensor.name} needs ${total / elementBytes} elements, got room for ${out.length}`)
        // Little-endian f32 needs no decoding: the bytes go straight into `out`.
        if (dtype === 'F32' && LITTLE_ENDIAN) {
          await readExactly(file, new Uint8Array(out.buffer, out.byteOffset, total), header.dataOffset + tensor.begin, path)
          return
        }
        // CHUNK_BYTES is a multiple of every element size, so no element straddles two reads.
        const chunk = new Uint8Array(Math.min(CHUNK_BYTES, total))
        for (let offset = 0; offset < total; offset += CHUNK_BYTES) {
          const length = Math.min(CHUNK_BYTES, total - offset)
          const view = chunk.subarray(0, length)
          await readExactly(file, view, header.dataOffset + tensor.begin + offset, path)
          decodeToFloat32(dtype, view, out, offset / elementBytes)
        }
      },
      close: () => file.close(),
    }
  } catch (error) {
    await file.close()
    throw error
  }
}

function withPath<T>(path: string, run: () => T): T {
  try {
    return run()
  } catch (error) {
    if (error instanceof SafetensorsError) throw new SafetensorsError(`${path}: ${error.message}`)
    throw error
  }
}
