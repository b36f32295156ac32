import { createId } from '../../shared/ids.ts'
import { jobResultSchemas, type JobType, type MergeParams } from '../../shared/job-types.ts'
import type { Env } from '../env.ts'

// A condition that holds while the job is still running the attempt that
// reported, with its two bind values.
export type AttemptGuard = { sql: string; args: [string, number] }

export function attemptGuard(jobId: string, attempt: number): AttemptGuard {
  return {
    sql: `EXISTS (SELECT 1 FROM jobs WHERE jobs.id = ? AND jobs.attempts = ? AND jobs.status = 'running')`,
    args: [jobId, attempt],
  }
}

// What a succeeded job changes besides its own row. Every statement carries
// the attempt guard and runs in the same batch as (and before) the status
// change, so the effect lands exactly once, together with it.
export type JobEffects = (
  env: Env,
  job: { params: Record<string, unknown> },
  result: unknown,
  guard: AttemptGuard,
) => D1PreparedStatement[]

const verifyArtifactEffects: JobEffects = (env, job, result, guard) => {
  const parsed = jobResultSchemas.verify_artifact.parse(result)
  const params = job.params as { model_id: string; version: string }
  const now = Date.now()
  const statements = parsed.files.map((file) =>
    env.DB.prepare(
      `UPDATE model_files SET verification = ?, verified_at = ?
        WHERE name = ? AND sha256 = ?
          AND version_id = (SELECT id FROM model_versions WHERE model_id = ? AND version = ?)
          AND ${guard.sql}`,
    ).bind(file.verdict, now, file.name, file.expected_sha256, params.model_id, params.version, ...guard.args),
  )
  // A version is verified only when every one of its files is.
  statements.push(
    env.DB.prepare(
      `UPDATE model_versions SET verified_at = ?,
          verification = CASE
            WHEN NOT EXISTS (SELECT 1 FROM model_files f WHERE f.version_id = model_versions.id AND f.verification <> 'verified') THEN 'verified'
            WHEN EXISTS (SELECT 1 FROM model_files f WHERE f.version_id = model_versions.id AND f.verification IN ('mismatch', 'missing')) THEN 'failed'
            ELSE 'unverified' END
        WHERE model_id = ? AND version = ? AND ${guard.sql}`,
    ).bind(now, params.model_id, params.version, ...guard.args),
  )
  return statements
}

// A merge's output becomes a new staging version of the output model, with
// its files, its lineage (the config, and each input version's files and
// SHA-256s) and the bytes of tensors it processed (runner time is metered
// for every job where results are applied).
// A version name taken since the job was created leaves everything out: the
// files and lineage attach only to the version row this batch inserted.
const mergeEffects: JobEffects = (env, job, result, guard) => {
  const parsed = jobResultSchemas.merge.parse(result)
  const params = job.params as MergeParams
  const [jobId] = guard.args
  const versionId = createId('mv')
  const now = Date.now()
  const version = env.DB.prepare(
    `INSERT OR IGNORE INTO model_versions (id, model_id, tenant_id, version, stage, verification, created_at)
      SELECT ?, models.id, models.tenant_id, ?, 'staging', 'unverified', ?
        FROM models JOIN jobs ON jobs.id = ? AND jobs.tenant_id = models.tenant_id
        WHERE models.id = ? AND ${guard.sql}`,
  ).bind(versionId, parsed.version, now, jobId, parsed.model_id, ...guard.args)
  const files = parsed.files.map((file) =>
    env.DB.prepare(
      `INSERT INTO model_files (id, version_id, tenant_id, name, artifact_key, sha256, size, verification, created_at)
        SELECT ?, id, tenant_id, ?, ?, ?, ?, 'unverified', ? FROM model_versions WHERE id = ? AND ${guard.sql}`,
    ).bind(createId('file'), file.name, file.artifact_key, file.sha256, file.size, now, versionId, ...guard.args),
  )
  const inputs = Object.entries(params.models).map(([ref, model]) => ({
    ref,
    model_id: model.model_id,
    version: model.version,
    files: model.files.map((file) => ({ name: file.name, sha256: file.sha256 })),
  }))
  const lineage = env.DB.prepare(
    `INSERT INTO model_lineage (version_id, tenant_id, job_id, config, inputs, created_at)
      SELECT id, tenant_id, ?, ?, ?, ? FROM model_versions WHERE id = ? AND ${guard.sql}`,
  ).bind(jobId, JSON.stringify(params.config), JSON.stringify(inputs), now, versionId, ...guard.args)
  // The id is the job's, so the ledger counts a merge once.
  const usage = env.DB.prepare(
    `INSERT OR IGNORE INTO usage_events (id, tenant_id, key_id, meter, value, timestamp, request_id, recorded_at)
      SELECT ?, tenant_id, key_id, 'merge.bytes', ?, ?, COALESCE(request_id, id), ? FROM jobs WHERE id = ? AND ${guard.sql}`,
  ).bind(`ue_${jobId}_merge_bytes`, parsed.input_bytes, now, now, jobId, ...guard.args)
  return [version, ...files, lineage, usage]
}

// A batch bills its rows once: the event id is the job's.
const batchInferenceEffects: JobEffects = (env, _job, result, guard) => {
  const parsed = jobResultSchemas.batch_inference.parse(result)
  const [jobId] = guard.args
  const now = Date.now()
  return [
    env.DB.prepare(
      `INSERT OR IGNORE INTO usage_events (id, tenant_id, key_id, meter, value, timestamp, request_id, recorded_at)
        SELECT ?, tenant_id, key_id, 'predict.rows', ?, ?, COALESCE(request_id, id), ? FROM jobs WHERE id = ? AND ${guard.sql}`,
    ).bind(`ue_${jobId}_predict_rows`, parsed.rows, now, now, jobId, ...guard.args),
  ]
}

export const jobEffects: Record<JobType, JobEffects> = {
  verify_artifact: verifyArtifactEffects,
  merge: mergeEffects,
  batch_inference: batchInferenceEffects,
}

export function resultIsValid(type: string, result: unknown): boolean {
  const schema = jobResultSchemas[type as JobType]
  return schema !== undefined && schema.safeParse(result).success
}
