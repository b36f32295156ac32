import { and, desc, eq } from 'drizzle-orm'
import { createId } from '../../shared/ids.ts'
import type { VerifyArtifactParams } from '../../shared/job-types.ts'
import { database } from '../db/client.ts'
import { jobs, modelVersions } from '../db/schema.ts'
import type { AuthContext, Env } from '../env.ts'
import { ApiError } from '../errors.ts'
import { filesOf, findModel, findVersion } from '../models/model-store.ts'
import type { JobRow } from './job-view.ts'

export type VerifyArtifactRequest = { type: 'verify_artifact'; model: string; version?: string | undefined }

// The version a request means: the one it names, else production, else the newest.
export async function resolveVersion(env: Env, tenantId: string, request: { model: string; version?: string | undefined }) {
  const db = database(env)
  const model = await findModel(db, tenantId, request.model)
  if (request.version) return findVersion(db, model, request.version)
  const [row] = await db
    .select()
    .from(modelVersions)
    .where(eq(modelVersions.modelId, model.id))
    .orderBy(desc(eq(modelVersions.stage, 'production')), desc(modelVersions.createdAt))
    .limit(1)
  if (!row) throw new ApiError(409, `Model ${model.id} has no versions yet`, { code: 'no_versions', param: 'model' })
  return row
}

export async function verifyArtifactParams(env: Env, tenantId: string, request: VerifyArtifactRequest): Promise<VerifyArtifactParams> {
  const version = await resolveVersion(env, tenantId, request)
  const files = (await filesOf(database(env), [version.id])).get(version.id) ?? []
  if (files.length === 0) throw new ApiError(409, `Version ${version.version} has no files to verify`, { code: 'version_empty', param: 'version' })
  return {
    model_id: version.modelId,
    version: version.version,
    files: files.map((file) => ({ name: file.name, artifact_key: file.artifactKey, sha256: file.sha256, size: file.size })),
  }
}

// Writes the job row, then puts it on the jobs queue. If the queue refuses,
// the row is removed and the client gets a 503 to retry: no job waits for a
// message that was never sent.
export async function enqueueJob(
  env: Env,
  auth: AuthContext,
  input: { type: string; params: Record<string, unknown>; requestId: string },
): Promise<JobRow> {
  const now = Date.now()
  const db = database(env)
  const [row] = await db
    .insert(jobs)
    .values({
      id: createId('job', now),
      tenantId: auth.tenantId,
      keyId: auth.keyId,
      type: input.type,
      params: input.params,
      requestId: input.requestId,
      createdAt: now,
      updatedAt: now,
    })
    .returning()
  try {
    await env.JOBS.send({ job_id: row!.id })
  } catch {
    await db.delete(jobs).where(and(eq(jobs.id, row!.id), eq(jobs.status, 'queued'))).run()
    throw new ApiError(503, 'The jobs queue is unavailable; retry', { code: 'queue_unavailable', headers: { 'retry-after': '1' } })
  }
  return row!
}
