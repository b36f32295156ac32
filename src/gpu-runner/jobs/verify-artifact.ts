import type { ArtifactRef, FileVerdict, VerifyArtifactResult } from '../../shared/job-types.ts'
import type { FetchOutcome } from '../artifact-cache.ts'
import type { JobContext } from '../job-registry.ts'

// Re-hashes every file of a model version as stored on the edge. Going through
// the cache means a file this runner already verified counts as verified, and
// a file it verifies now is ready for the jobs that use it next.

// A changed file is worse than an absent one: it means the bytes were altered.
const SEVERITY: Record<FileVerdict, number> = { verified: 0, missing: 1, mismatch: 2 }

function fileResult(ref: ArtifactRef, outcome: FetchOutcome): VerifyArtifactResult['files'][number] {
  const base = { name: ref.name, expected_sha256: ref.sha256 }
  switch (outcome.status) {
    case 'verified':
      return { ...base, actual_sha256: outcome.sha256, size: outcome.size, verdict: 'verified' }
    case 'mismatch':
      return { ...base, actual_sha256: outcome.sha256, size: outcome.size, verdict: 'mismatch' }
    case 'missing':
      return { ...base, actual_sha256: null, size: 0, verdict: 'missing' }
  }
}

export async function verifyArtifact(context: JobContext<'verify_artifact'>): Promise<VerifyArtifactResult> {
  const { files } = context.params
  const total = files.reduce((sum, file) => sum + file.size, 0)
  let finished = 0
  const report = (done: number) => context.reportProgress({ done, total, unit: 'bytes' })
  report(0)

  const results: VerifyArtifactResult['files'] = []
  for (const ref of files) {
    const outcome = await context.cache.fetchVerified(ref, {
      signal: context.signal,
      onBytes: (bytes) => report(finished + Math.min(bytes, ref.size)),
    })
    results.push(fileResult(ref, outcome))
    finished += ref.size
    report(finished)
    if (outcome.status !== 'verified') context.logger.warn('artifact not verified', { file: ref.name, verdict: outcome.status })
  }

  const verdict = results.reduce<FileVerdict>(
    (worst, file) => (SEVERITY[file.verdict] > SEVERITY[worst] ? file.verdict : worst),
    'verified',
  )
  return { verdict, files: results }
}
