import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { Readable } from 'node:stream'
import type { EdgeClient, UploadCompleted } from './edge-client.ts'

// Uploads a job's output file to the edge in parts. Each part is read twice:
// once to hash it, because the signature carries the body's SHA-256 before the
// body is sent, and once to stream it, so a large part never sits in memory.

export type UploadArtifactFileOptions = {
  jobId: string
  filename: string
  path: string
  signal?: AbortSignal
}

function readRange(path: string, start: number, end: number, signal?: AbortSignal): Readable {
  if (end <= start) return Readable.from([])
  // createReadStream's end is inclusive.
  return createReadStream(path, { start, end: end - 1, signal })
}

export async function uploadArtifactFile(edge: EdgeClient, options: UploadArtifactFileOptions): Promise<UploadCompleted> {
  const { path, signal } = options
  const { size } = await stat(path)
  const upload = await edge.createUpload({ job_id: options.jobId, filename: options.filename, bytes: size }, signal)
  const whole = createHash('sha256')
  // An empty file is still one (empty) part: a multipart upload needs at least one.
  const partCount = Math.max(1, Math.ceil(size / upload.part_size))

  for (let partNumber = 1; partNumber <= partCount; partNumber++) {
    const start = (partNumber - 1) * upload.part_size
    const end = Math.min(size, start + upload.part_size)
    const partHash = createHash('sha256')
    for await (const chunk of readRange(path, start, end, signal)) {
      partHash.update(chunk as Buffer)
      whole.update(chunk as Buffer)
    }
    await edge.uploadPart(
      upload.id,
      partNumber,
      {
        sha256: partHash.digest('hex'),
        size: end - start,
        open: () => Readable.toWeb(readRange(path, start, end, signal)) as ReadableStream<Uint8Array>,
      },
      signal,
    )
  }

  const sha256 = whole.digest('hex')
  const completed = await edge.completeUpload(upload.id, sha256, signal)
  if (completed.sha256 !== sha256 || completed.size !== size) {
    throw new Error(`edge stored ${completed.size} bytes with SHA-256 ${completed.sha256}, sent ${size} bytes with ${sha256}`)
  }
  return completed
}
