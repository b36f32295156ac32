import type { Env } from '../env.ts'
import { ApiError } from '../errors.ts'
import { hashingStream, type HashedStream } from './hashing-stream.ts'

export type StoredArtifact = { key: string; sha256: string; size: number }

export type StoreArtifactOptions = {
  key: string
  body: ReadableStream<Uint8Array>
  length: number
  contentType?: string
  expectedSha256?: string
}

// Waits for both ends of a streamed write. The hashing side knows why a body
// was refused (its length), so its error is the one reported. A write that
// fails without draining the stream (R2 refusing at once) stops the hashing
// side too, or it would wait for a reader forever.
export async function settleStreamedWrite<U>(hashing: HashedStream, writing: Promise<U>): Promise<[Awaited<HashedStream['done']>, U]> {
  const stopping = writing.catch((error: unknown) => {
    hashing.abort(error)
    throw error
  })
  const [hashed, written] = await Promise.allSettled([hashing.done, stopping])
  if (hashed.status === 'rejected') throw hashed.reason
  if (written.status === 'rejected') throw written.reason
  return [hashed.value, written.value]
}

// Streams a body into R2 under `key`, computing its SHA-256 as it goes. When
// the client named the hash it expects and the bytes differ, the object is
// deleted and the call fails with 422: nothing is recorded.
export async function storeArtifact(env: Pick<Env, 'ARTIFACTS'>, options: StoreArtifactOptions): Promise<StoredArtifact> {
  const hashed = hashingStream(options.body, { length: options.length })
  const write = env.ARTIFACTS.put(options.key, hashed.readable, {
    httpMetadata: { contentType: options.contentType ?? 'application/octet-stream' },
  })
  const [{ sha256, size }] = await settleStreamedWrite(hashed, write)
  if (options.expectedSha256 && options.expectedSha256 !== sha256) {
    await env.ARTIFACTS.delete(options.key)
    throw new ApiError(422, `SHA-256 mismatch: expected ${options.expectedSha256}, received ${sha256}`, { code: 'sha256_mismatch' })
  }
  return { key: options.key, sha256, size }
}
