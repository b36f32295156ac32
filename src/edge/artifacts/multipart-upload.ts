import { and, eq } from 'drizzle-orm'
import { createId } from '../../shared/ids.ts'
import { ResumableSha256 } from '../../shared/resumable-sha256.ts'
import { database } from '../db/client.ts'
import { uploads } from '../db/schema.ts'
import type { Env } from '../env.ts'
import { ApiError, notFound } from '../errors.ts'
import { uploadKey } from './artifact-names.ts'
import { hashingStream } from './hashing-stream.ts'
import { settleStreamedWrite } from './store-artifact.ts'
import { unixSeconds } from '../unix-seconds.ts'

// Large files through R2 multipart (OpenAI's Uploads shape). Parts arrive in
// order, so the edge can keep a resumable SHA-256 across them; every part but
// the last has the size of the first (R2 wants equal parts, at least 5 MiB).

export const MIN_PART_BYTES = 5 * 1024 * 1024
export const MAX_PART_BYTES = 90 * 1024 * 1024
export const UPLOAD_TTL_MS = 24 * 60 * 60 * 1000
// A part whose writer died keeps its claim this long before another may take it.
const PART_CLAIM_MS = 5 * 60 * 1000

export type UploadRow = typeof uploads.$inferSelect

export type CreateUploadInput = {
  tenantId: string
  filename: string
  purpose: string
  bytes: number
  mimeType: string | null
  jobId?: string
}

export async function createUpload(env: Env, input: CreateUploadInput, now = Date.now()): Promise<UploadRow> {
  const id = createId('upload', now)
  const key = uploadKey(input.tenantId, id, input.filename)
  const multipart = await env.ARTIFACTS.createMultipartUpload(key, {
    httpMetadata: { contentType: input.mimeType ?? 'application/octet-stream' },
  })
  const [row] = await database(env)
    .insert(uploads)
    .values({
      id,
      tenantId: input.tenantId,
      filename: input.filename,
      purpose: input.purpose,
      mimeType: input.mimeType,
      bytes: input.bytes,
      status: 'pending',
      artifactKey: key,
      r2UploadId: multipart.uploadId,
      hashState: new ResumableSha256().saveState(),
      parts: [],
      jobId: input.jobId ?? null,
      createdAt: now,
      expiresAt: now + UPLOAD_TTL_MS,
    })
    .returning()
  return row!
}

export async function findUpload(env: Env, tenantId: string, id: string): Promise<UploadRow> {
  const [row] = await database(env)
    .select()
    .from(uploads)
    .where(and(eq(uploads.id, id), eq(uploads.tenantId, tenantId)))
  if (!row) throw notFound('upload', 'upload_id')
  return row
}

function assertPending(upload: UploadRow, now: number): void {
  if (upload.status !== 'pending') {
    throw new ApiError(409, `Upload ${upload.id} is ${upload.status}`, { code: 'upload_not_pending' })
  }
  if (upload.expiresAt < now) throw new ApiError(409, `Upload ${upload.id} has expired`, { code: 'upload_expired' })
}

function checkPartSize(upload: UploadRow, partNumber: number, length: number): void {
  const remaining = upload.bytes - upload.receivedBytes
  if (length === 0) throw new ApiError(400, 'A part cannot be empty', { code: 'invalid_part_size' })
  if (length > remaining) {
    throw new ApiError(400, `Part ${partNumber} has ${length} bytes but only ${remaining} remain of the declared ${upload.bytes}`, {
      code: 'invalid_part_size',
    })
  }
  if (length === remaining) return
  const expected = upload.partSize ?? length
  if (expected < MIN_PART_BYTES || length !== expected) {
    throw new ApiError(
      400,
      upload.partSize === null
        ? `Every part but the last must be at least ${MIN_PART_BYTES} bytes`
        : `Every part but the last must be ${upload.partSize} bytes, the size of the first`,
      { code: 'invalid_part_size' },
    )
  }
}

export type PutPartInput = {
  partNumber: number
  body: ReadableStream<Uint8Array>
  length: number
  // The signed hash of a runner's part: the part is refused if its bytes differ.
  expectedPartSha256?: string
}

export async function putUploadPart(env: Env, upload: UploadRow, input: PutPartInput, now = Date.now()) {
  assertPending(upload, now)
  if (input.partNumber !== upload.nextPart) {
    throw new ApiError(409, `Part ${input.partNumber} is out of order: the next part is ${upload.nextPart}`, {
      code: 'part_out_of_order',
      param: 'part',
    })
  }
  checkPartSize(upload, input.partNumber, input.length)
  const db = database(env)
  const claimed = await env.DB.prepare(
    `UPDATE uploads SET part_claimed_at = ?3
      WHERE id = ?1 AND next_part = ?2 AND status = 'pending' AND (part_claimed_at IS NULL OR part_claimed_at < ?4)
      RETURNING hash_state`,
  )
    .bind(upload.id, input.partNumber, now, now - PART_CLAIM_MS)
    .first<{ hash_state: string }>()
  if (!claimed) throw new ApiError(409, `Part ${input.partNumber} is already being uploaded`, { code: 'part_in_progress' })

  try {
    const hash = ResumableSha256.restore(claimed.hash_state)
    const hashed = hashingStream(input.body, { length: input.length, onChunk: (chunk) => hash.update(chunk) })
    const multipart = env.ARTIFACTS.resumeMultipartUpload(upload.artifactKey, upload.r2UploadId)
    const [{ sha256 }, part] = await settleStreamedWrite(hashed, multipart.uploadPart(input.partNumber, hashed.readable))
    if (input.expectedPartSha256 && input.expectedPartSha256 !== sha256) {
      throw new ApiError(401, 'Runner signature refused: body does not match its signed hash', { code: 'invalid_signature' })
    }
    const parts = [...upload.parts, { partNumber: part.partNumber, etag: part.etag, size: input.length }]
    const [updated] = await db
      .update(uploads)
      .set({
        nextPart: input.partNumber + 1,
        receivedBytes: upload.receivedBytes + input.length,
        partSize: upload.partSize ?? input.length,
        hashState: hash.saveState(),
        parts,
        partClaimedAt: null,
      })
      .where(and(eq(uploads.id, upload.id), eq(uploads.nextPart, input.partNumber), eq(uploads.status, 'pending')))
      .returning()
    if (!updated) throw new ApiError(409, `Upload ${upload.id} changed while part ${input.partNumber} was written`, { code: 'upload_conflict' })
    return updated
  } catch (error) {
    await db
      .update(uploads)
      .set({ partClaimedAt: null })
      .where(and(eq(uploads.id, upload.id), eq(uploads.nextPart, input.partNumber)))
      .run()
    throw error
  }
}

export async function completeUpload(env: Env, upload: UploadRow, expectedSha256: string, now = Date.now()): Promise<UploadRow> {
  assertPending(upload, now)
  if (upload.receivedBytes !== upload.bytes) {
    throw new ApiError(409, `Upload ${upload.id} is incomplete: ${upload.receivedBytes} of ${upload.bytes} bytes received`, {
      code: 'upload_incomplete',
    })
  }
  const claimed = await env.DB.prepare(
    `UPDATE uploads SET status = 'completing' WHERE id = ?1 AND status = 'pending' AND part_claimed_at IS NULL RETURNING id`,
  )
    .bind(upload.id)
    .first()
  if (!claimed) throw new ApiError(409, `Upload ${upload.id} is being written or completed`, { code: 'upload_conflict' })

  const db = database(env)
  const multipart = env.ARTIFACTS.resumeMultipartUpload(upload.artifactKey, upload.r2UploadId)
  const sha256 = ResumableSha256.restore(upload.hashState).digestHex()
  // Until the final row is written, any fault hands the claim back: the
  // upload is pending again and the client may retry.
  const unclaim = () => db.update(uploads).set({ status: 'pending' }).where(and(eq(uploads.id, upload.id), eq(uploads.status, 'completing'))).run()
  if (sha256 !== expectedSha256) {
    try {
      await db.update(uploads).set({ status: 'failed', sha256, completedAt: now }).where(eq(uploads.id, upload.id)).run()
    } catch (error) {
      await unclaim()
      throw error
    }
    // The row says failed; parts left behind by a failed abort expire in R2.
    await multipart.abort().catch((error: unknown) => logUploadFault(upload, `aborting a discarded upload failed: ${String(error)}`))
    throw new ApiError(422, `SHA-256 mismatch: expected ${expectedSha256}, received ${sha256}; the upload is discarded`, {
      code: 'sha256_mismatch',
      param: 'sha256',
    })
  }
  try {
    await completeMultipart(env, upload, multipart)
    const [completed] = await db
      .update(uploads)
      .set({ status: 'completed', sha256, completedAt: now })
      .where(eq(uploads.id, upload.id))
      .returning()
    return completed!
  } catch (error) {
    await unclaim()
    throw error
  }
}

// R2 completes a multipart upload once. A retry after a fault that struck
// between R2 completing it and the row saying so finds the object already
// assembled under the upload's own key, and takes it.
async function completeMultipart(env: Env, upload: UploadRow, multipart: R2MultipartUpload): Promise<void> {
  try {
    await multipart.complete(upload.parts.map(({ partNumber, etag }) => ({ partNumber, etag })))
  } catch (error) {
    const assembled = await env.ARTIFACTS.head(upload.artifactKey).catch(() => null)
    if (assembled?.size !== upload.bytes) throw error
  }
}

function logUploadFault(upload: Pick<UploadRow, 'id'>, message: string): void {
  console.error(JSON.stringify({ level: 'error', upload_id: upload.id, message }))
}

export async function cancelUpload(env: Env, upload: UploadRow, now = Date.now()): Promise<UploadRow> {
  if (upload.status !== 'pending') {
    throw new ApiError(409, `Upload ${upload.id} is ${upload.status}`, { code: 'upload_not_pending' })
  }
  const [cancelled] = await database(env)
    .update(uploads)
    .set({ status: 'cancelled', completedAt: now })
    .where(and(eq(uploads.id, upload.id), eq(uploads.status, 'pending')))
    .returning()
  if (!cancelled) throw new ApiError(409, `Upload ${upload.id} changed meanwhile`, { code: 'upload_conflict' })
  await discardStorage(env, cancelled)
  return cancelled
}

// The row is the truth; freeing R2 is best effort (R2 expires the parts of an
// abandoned multipart upload itself). The object under the upload's own key
// exists only if a completion was cut off after R2 assembled it.
async function discardStorage(env: Env, upload: Pick<UploadRow, 'id' | 'artifactKey' | 'r2UploadId'>): Promise<void> {
  await env.ARTIFACTS.resumeMultipartUpload(upload.artifactKey, upload.r2UploadId)
    .abort()
    .catch((error: unknown) => logUploadFault(upload, `aborting the R2 multipart upload failed: ${String(error)}`))
  await env.ARTIFACTS.delete(upload.artifactKey).catch((error: unknown) => logUploadFault(upload, `deleting the assembled object failed: ${String(error)}`))
}

// Pending uploads past their expiry are aborted in R2, so their parts stop
// taking storage, and marked expired.
export async function expireUploads(env: Env, now = Date.now()): Promise<number> {
  const { results } = await env.DB.prepare(
    `UPDATE uploads SET status = 'expired', completed_at = ?1
      WHERE id IN (SELECT id FROM uploads WHERE status = 'pending' AND expires_at < ?1 LIMIT 100)
      RETURNING id, artifact_key, r2_upload_id`,
  )
    .bind(now)
    .all<{ id: string; artifact_key: string; r2_upload_id: string }>()
  for (const upload of results) await discardStorage(env, { id: upload.id, artifactKey: upload.artifact_key, r2UploadId: upload.r2_upload_id })
  return results.length
}

// OpenAI's Upload object, with Moat's hash and part progress.
export function uploadView(row: UploadRow) {
  return {
    id: row.id,
    object: 'upload' as const,
    bytes: row.bytes,
    filename: row.filename,
    purpose: row.purpose,
    status: row.status,
    created_at: unixSeconds(row.createdAt),
    expires_at: unixSeconds(row.expiresAt),
    received_bytes: row.receivedBytes,
    next_part: row.nextPart,
    part_size: row.partSize,
    sha256: row.status === 'completed' || row.status === 'attached' ? row.sha256 : null,
  }
}
