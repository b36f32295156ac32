import { jobResultSchemas, type JobType } from '../../shared/job-types.ts'
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

export const jobEffects: Record<JobType, JobEffects> = {
  verify_artifact: verifyArtifactEffects,
}

export function resultIsValid(type: string, result: unknown): boolean {
  const schema = jobResultSchemas[type as JobType]
  return schema !== undefined && schema.safeParse(result).success
}
