import { toHex } from '../../shared/encoding.ts'
import { ApiError } from '../errors.ts'

export type HashedStream = {
  readable: ReadableStream<Uint8Array>
  // Resolves once the whole body has passed through, with its SHA-256 and size.
  done: Promise<{ sha256: string; size: number }>
  // Stops reading the body (a writer that failed will not drain `readable`):
  // `done` rejects with the reason.
  abort: (reason: unknown) => void
}

export type HashingOptions = {
  length: number
  // Extra consumer of every chunk (the resumable hash of a multipart upload).
  onChunk?: (chunk: Uint8Array) => void
}

// Streams a request body of a declared length through SHA-256 on its way to
// R2, never holding it in memory. A body longer or shorter than declared fails
// the stream, and so the write.
export function hashingStream(body: ReadableStream<Uint8Array>, options: HashingOptions): HashedStream {
  const digest = new crypto.DigestStream('SHA-256')
  const digestWriter = digest.getWriter()
  let size = 0
  const transform = new TransformStream<Uint8Array, Uint8Array>({
    async transform(chunk, controller) {
      size += chunk.byteLength
      if (size > options.length) {
        throw new ApiError(400, `Body is longer than its Content-Length (${options.length} bytes)`, { code: 'length_mismatch' })
      }
      options.onChunk?.(chunk)
      await digestWriter.write(chunk)
      controller.enqueue(chunk)
    },
    async flush() {
      if (size !== options.length) {
        throw new ApiError(400, `Body is shorter than its Content-Length (${size} of ${options.length} bytes)`, { code: 'length_mismatch' })
      }
      await digestWriter.close()
    },
  })
  const fixed = new FixedLengthStream(options.length)
  const aborter = new AbortController()
  const piped = body.pipeThrough(transform).pipeTo(fixed.writable, { signal: aborter.signal })
  const done = piped.then(async () => ({ sha256: toHex(await digest.digest), size }))
  return { readable: fixed.readable, done, abort: (reason) => aborter.abort(reason) }
}

export function requireContentLength(header: string | undefined, max: number, what: string): number {
  if (header === undefined) throw new ApiError(411, `${what} needs a Content-Length header`, { code: 'length_required' })
  if (!/^\d{1,16}$/.test(header)) throw new ApiError(400, 'Malformed Content-Length', { code: 'invalid_content_length' })
  const length = Number(header)
  if (length > max) {
    throw new ApiError(413, `${what} is ${length} bytes; the limit is ${max} bytes`, { code: 'request_too_large' })
  }
  return length
}
