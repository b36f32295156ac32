import { and, eq } from 'drizzle-orm'
import type { Database } from '../db/client.ts'
import { modelVersions } from '../db/schema.ts'
import { ApiError } from '../errors.ts'
import type { FileRow, ModelRow, VersionRow } from './model-store.ts'

export const STAGES = ['staging', 'production', 'archived'] as const
export type Stage = (typeof STAGES)[number]

// Moves a version to a stage. A model has one production version at a time:
// promoting one archives the previous, in the same batch.
export async function setVersionStage(db: Database, model: ModelRow, row: VersionRow, files: FileRow[], stage: Stage): Promise<VersionRow> {
  if (stage === 'production' && files.length === 0) {
    throw new ApiError(409, 'A version without files cannot go to production', { code: 'version_empty', param: 'stage' })
  }
  const archivePrevious = db
    .update(modelVersions)
    .set({ stage: 'archived' })
    .where(and(eq(modelVersions.modelId, model.id), eq(modelVersions.stage, 'production')))
  const promote = db.update(modelVersions).set({ stage }).where(eq(modelVersions.id, row.id)).returning()
  const [, updated] = stage === 'production' ? await db.batch([archivePrevious, promote]) : [null, await promote]
  return updated[0]!
}
