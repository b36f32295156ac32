import { and, desc, eq, inArray } from 'drizzle-orm'
import type { Database } from '../db/client.ts'
import { modelLineage, models, modelVersions } from '../db/schema.ts'
import { filesOf, type FileRow, type ModelRow, type VersionRow } from '../models/model-store.ts'
import { STAGES } from '../models/set-version-stage.ts'
import { CsrfField, Layout } from './layout.tsx'

type LineageRow = typeof modelLineage.$inferSelect
export type ModelEntry = { model: ModelRow; versions: { version: VersionRow; files: FileRow[]; lineage?: LineageRow }[] }

export async function loadModels(db: Database, tenantId: string): Promise<ModelEntry[]> {
  const rows = await db.select().from(models).where(eq(models.tenantId, tenantId)).orderBy(desc(models.id)).limit(100)
  if (rows.length === 0) return []
  const versions = await db
    .select()
    .from(modelVersions)
    .where(inArray(modelVersions.modelId, rows.map((m) => m.id)))
    .orderBy(desc(modelVersions.createdAt))
  const files = await filesOf(db, versions.map((v) => v.id))
  const lineage = new Map<string, LineageRow>()
  // D1 caps bound parameters per statement; 90 ids per query stays under it.
  for (let i = 0; i < versions.length; i += 90) {
    const ids = versions.slice(i, i + 90).map((v) => v.id)
    const found = await db.select().from(modelLineage).where(and(eq(modelLineage.tenantId, tenantId), inArray(modelLineage.versionId, ids)))
    for (const row of found) lineage.set(row.versionId, row)
  }
  return rows.map((model) => ({
    model,
    versions: versions
      .filter((v) => v.modelId === model.id)
      .map((version) => {
        const row = lineage.get(version.id)
        return { version, files: files.get(version.id) ?? [], ...(row ? { lineage: row } : {}) }
      }),
  }))
}

// Where a merged version came from: the job, the method, and each input
// version with the SHA-256 of the files the merge read.
function Lineage(props: { lineage: LineageRow | undefined; names: Map<string, string> }) {
  const { lineage } = props
  if (!lineage) return <span>uploaded</span>
  const method = typeof lineage.config.merge_method === 'string' ? lineage.config.merge_method : 'merge'
  return (
    <div class="lineage">
      <span>{`${method} by `}<a href={`/dashboard/jobs/${lineage.jobId}`}>{lineage.jobId}</a>{' of:'}</span>
      <ul>
        {lineage.inputs.map((input) => (
          <li>
            <a href={`#model-${input.model_id}`}>{`${props.names.get(input.model_id) ?? input.model_id} · ${input.version}`}</a>
            <details>
              <summary>{`${input.files.length} file${input.files.length === 1 ? '' : 's'} read`}</summary>
              {input.files.map((file) => (
                <div>{file.name}: <code>{file.sha256}</code></div>
              ))}
            </details>
          </li>
        ))}
      </ul>
    </div>
  )
}

function StageForm(props: { csrf: string; model: ModelRow; version: VersionRow }) {
  const id = `stage-${props.version.id}`
  return (
    <form method="post" action={`/dashboard/models/${props.model.id}/versions/${encodeURIComponent(props.version.version)}/stage`}>
      <CsrfField token={props.csrf} />
      <label for={id} class="visually-hidden">{`Stage of ${props.model.name} ${props.version.version}`}</label>
      <select id={id} name="stage">
        {STAGES.map((stage) => (
          <option value={stage} selected={stage === props.version.stage}>{stage}</option>
        ))}
      </select>{' '}
      <button type="submit">Set stage</button>
    </form>
  )
}

export function ModelsPage(props: { csrf: string; entries: ModelEntry[]; error?: string }) {
  const names = new Map(props.entries.map(({ model }) => [model.id, model.name]))
  return (
    <Layout title="Models" current="/dashboard/models" csrf={props.csrf}>
      {props.error ? <p class="error" role="alert">{props.error}</p> : null}
      {props.entries.length === 0 ? <p>No models registered yet.</p> : null}
      {props.entries.map(({ model, versions }) => (
        <section id={`model-${model.id}`}>
          <h2>{model.name}</h2>
          <p>{`${model.format} · ${model.task}`}</p>
          <table>
            <thead>
              <tr><th>Version</th><th>Stage</th><th>Verification</th><th>Files (SHA-256)</th><th>Lineage</th><th>Change stage</th></tr>
            </thead>
            <tbody>
              {versions.map(({ version, files, lineage }) => (
                <tr id={`version-${version.id}`}>
                  <td>{version.version}</td>
                  <td>{version.stage}</td>
                  <td>{version.verification}</td>
                  <td>
                    {files.map((file) => (
                      <div>{file.name}: <code>{file.sha256}</code></div>
                    ))}
                  </td>
                  <td><Lineage lineage={lineage} names={names} /></td>
                  <td><StageForm csrf={props.csrf} model={model} version={version} /></td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      ))}
    </Layout>
  )
}
