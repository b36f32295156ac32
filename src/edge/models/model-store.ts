import { and, asc, eq, inArray, sql } from 'drizzle-orm'
import { createId } from '../../shared/ids.ts'
import type { Database } from '../db/client.ts'
import { modelFiles, models, modelVersions } from '../db/schema.ts'
import { ApiError, notFound } from '../errors.ts'
import { unixSeconds } from '../unix-seconds.ts'

export type ModelRow = typeof models.$inferSelect
export type VersionRow = typeof modelVersions.$inferSelect
export type FileRow = typeof modelFiles.$inferSelect

export function modelView(row: ModelRow) {
  return {
    id: row.id,
    object: 'model' as const,
    name: row.name,
    format: row.format,
    task: row.task,
    labels: row.labels ?? null,
    input: row.input ?? null,
    policy: row.policy ?? null,
    created_at: unixSeconds(row.createdAt),
  }
}

export function fileView(row: FileRow) {
  return {
    name: row.name,
    sha256: row.sha256,
    size: row.size,
    verification: row.verification,
    verified_at: unixSeconds(row.verifiedAt),
    created_at: unixSeconds(row.createdAt),
  }
}

export function versionView(row: VersionRow, files: FileRow[]) {
  return {
    id: row.id,
    object: 'model.version' as const,
    model_id: row.modelId,
    version: row.version,
    stage: row.stage,
    verification: row.verification,
    verified_at: unixSeconds(row.verifiedAt),
    created_at: unixSeconds(row.createdAt),
    files: files.map(fileView),
  }
}

// Another tenant's model answers exactly like a model that does not exist.
export async function findModel(db: Database, tenantId: string, modelId: string): Promise<ModelRow> {
  const [row] = await db.select().from(models).where(and(eq(models.id, modelId), eq(models.tenantId, tenantId)))
  if (!row) throw notFound('model', 'id')
  return row
}

export async function findVersion(db: Database, model: ModelRow, version: string): Promise<VersionRow> {
  const [row] = await db
    .select()
    .from(modelVersions)
    .where(and(eq(modelVersions.modelId, model.id), eq(modelVersions.version, version)))
  if (!row) throw notFound('model version', 'version')
  return row
}

export async function findVersionIfAny(db: Database, model: ModelRow, version: string): Promise<VersionRow | undefined> {
  const [row] = await db
    .select()
    .from(modelVersions)
    .where(and(eq(modelVersions.modelId, model.id), eq(modelVersions.version, version)))
  return row
}

export async function filesOf(db: Database, versionIds: string[]): Promise<Map<string, FileRow[]>> {
  const byVersion = new Map<string, FileRow[]>()
  if (versionIds.length === 0) return byVersion
  const rows = await db.select().from(modelFiles).where(inArray(modelFiles.versionId, versionIds)).orderBy(asc(modelFiles.name))
  for (const row of rows) byVersion.set(row.versionId, [...(byVersion.get(row.versionId) ?? []), row])
  return byVersion
}

function fileExists(version: string, name: string): ApiError {
  return new ApiError(409, `Version ${version} already has a file named '${name}'; files are immutable`, {
    code: 'file_exists',
    param: 'name',
  })
}

// Files are immutable: a name is written once per version, so a verified hash
// stays true of the bytes behind it. Checked before a write, and again by the
// unique index when the row goes in.
export async function assertFileNameFree(db: Database, version: VersionRow, name: string): Promise<void> {
  const [existing] = await db
    .select({ id: modelFiles.id })
    .from(modelFiles)
    .where(and(eq(modelFiles.versionId, version.id), eq(modelFiles.name, name)))
  if (existing) throw fileExists(version.version, name)
}

export type NewFile = { fileId: string; name: string; artifactKey: string; sha256: string; size: number }

// What inspecting a served ONNX file found, kept on its version.
export type VersionInspection = Pick<VersionRow, 'io' | 'probe'>

// Writing the first file of a version creates the version, in staging. The
// version, what inspection found and the file row go in as one batch (one
// transaction): a fault leaves neither an empty version nor a file without
// its version.
export async function recordVersionFile(
  db: Database,
  model: ModelRow,
  version: string,
  file: NewFile,
  inspection?: VersionInspection,
): Promise<FileRow> {
  const versionId = sql`(SELECT ${modelVersions.id} FROM ${modelVersions} WHERE ${modelVersions.modelId} = ${model.id} AND ${modelVersions.version} = ${version})`
  const createVersion = db
    .insert(modelVersions)
    .values({ id: createId('mv'), modelId: model.id, tenantId: model.tenantId, version, createdAt: Date.now() })
    .onConflictDoNothing()
  const insertFile = db
    .insert(modelFiles)
    .values({
      id: file.fileId,
      versionId,
      tenantId: model.tenantId,
      name: file.name,
      artifactKey: file.artifactKey,
      sha256: file.sha256,
      size: file.size,
      createdAt: Date.now(),
    })
    .onConflictDoNothing()
    .returning()
  // The inspection is written only while the name is free: a refused file
  // never changes what the version's served file looks like.
  const nameFree = sql`NOT EXISTS (SELECT 1 FROM ${modelFiles} WHERE ${modelFiles.versionId} = ${versionId} AND ${modelFiles.name} = ${file.name})`
  const [row] = inspection
    ? (await db.batch([createVersion, db.update(modelVersions).set(inspection).where(and(eq(modelVersions.id, versionId), nameFree)), insertFile]))[2]
    : (await db.batch([createVersion, insertFile]))[1]
  if (!row) throw fileExists(version, file.name)
  return row
}
