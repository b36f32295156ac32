import { and, desc, eq } from 'drizzle-orm'
import { html, raw } from 'hono/html'
import type { Database } from '../db/client.ts'
import { jobs } from '../db/schema.ts'
import { isTerminal, type JobRow } from '../jobs/job-view.ts'
import { newSubmissionToken } from './form-submission.ts'
import { CsrfField, Layout } from './layout.tsx'
import type { ModelEntry } from './models-page.tsx'
import type { JobForm } from './start-job.ts'

export async function loadJobs(db: Database, tenantId: string): Promise<JobRow[]> {
  return db.select().from(jobs).where(eq(jobs.tenantId, tenantId)).orderBy(desc(jobs.id)).limit(100)
}

export async function loadJob(db: Database, tenantId: string, id: string): Promise<JobRow | undefined> {
  return (await db.select().from(jobs).where(and(eq(jobs.id, id), eq(jobs.tenantId, tenantId))))[0]
}

function progressText(job: JobRow): string {
  const unit = job.progressUnit ? ` ${job.progressUnit}` : ''
  return job.progressTotal === null ? `${job.progressDone}${unit}` : `${job.progressDone} / ${job.progressTotal}${unit}`
}

const MERGE_EXAMPLE = `merge_method: linear
models:
  - model: <model id>/<version>
    parameters: { weight: 0.5 }
  - model: <model id>/<version>
    parameters: { weight: 0.5 }
dtype: float32`

function VerifyForm(props: { csrf: string; models: ModelEntry[]; form?: JobForm | undefined }) {
  const chosen = props.form?.kind === 'verify' ? props.form.target : ''
  const targets = props.models.flatMap(({ model, versions }) =>
    versions.filter(({ files }) => files.length > 0).map(({ version }) => ({ value: `${model.id}/${version.version}`, label: `${model.name} · ${version.version} (${version.stage})` })),
  )
  return (
    <form method="post" action="/dashboard/jobs/verify">
      <CsrfField token={props.csrf} />
      <input type="hidden" name="submission" value={newSubmissionToken()} />
      <p>A runner downloads the version's files again and checks each SHA-256; the verdict lands on the version.</p>
      <p>
        <label for="verify-target">Model version</label>{' '}
        <select id="verify-target" name="target" required>
          {targets.map((target) => (
            <option value={target.value} selected={target.value === chosen}>{target.label}</option>
          ))}
        </select>
      </p>
      <button type="submit" disabled={targets.length === 0}>Start verification</button>
    </form>
  )
}

function MergeForm(props: { csrf: string; models: ModelEntry[]; form?: JobForm | undefined }) {
  const form = props.form?.kind === 'merge' ? props.form : undefined
  const refs = props.models.flatMap(({ model, versions }) => versions.map(({ version }) => ({ ref: `${model.id}/${version.version}`, name: `${model.name} · ${version.version}` })))
  return (
    <form method="post" action="/dashboard/jobs/merge">
      <CsrfField token={props.csrf} />
      <input type="hidden" name="submission" value={newSubmissionToken()} />
      <p>
        A mergekit configuration, as <code>POST /v1/merges</code> takes it; models are named by <code>&lt;model id&gt;/&lt;version&gt;</code>.
        The output becomes a new version of the base model (else the first model), with its lineage.
      </p>
      <p>
        <label for="merge-config">Merge config (YAML)</label>
        <br />
        <textarea id="merge-config" name="config" rows={12} cols={70} required spellcheck={false} placeholder={MERGE_EXAMPLE}>{form?.config ?? ''}</textarea>
      </p>
      <p>
        <label for="merge-output-version">Output version (optional)</label>{' '}
        <input id="merge-output-version" name="output_version" maxlength={64} value={form?.outputVersion ?? ''} />
      </p>
      {refs.length > 0 ? (
        <details>
          <summary>Model references of this tenant</summary>
          <ul>
            {refs.map((ref) => (
              <li><code>{ref.ref}</code> {ref.name}</li>
            ))}
          </ul>
        </details>
      ) : null}
      <button type="submit">Start merge</button>
    </form>
  )
}

export function JobsPage(props: { csrf: string; jobs: JobRow[]; models: ModelEntry[]; form?: JobForm; error?: string }) {
  return (
    <Layout title="Jobs" current="/dashboard/jobs" csrf={props.csrf}>
      {props.error ? <p class="error" role="alert">{props.error}</p> : null}
      <h2>Start a job</h2>
      <div class="columns">
        <section aria-labelledby="verify-heading">
          <h3 id="verify-heading">Verify a version's files</h3>
          <VerifyForm csrf={props.csrf} models={props.models} form={props.form} />
        </section>
        <section aria-labelledby="merge-heading">
          <h3 id="merge-heading">Merge models</h3>
          <MergeForm csrf={props.csrf} models={props.models} form={props.form} />
        </section>
      </div>
      <h2>Latest jobs</h2>
      {props.jobs.length === 0 ? <p>No jobs yet.</p> : null}
      <table>
        <thead>
          <tr><th>Job</th><th>Type</th><th>Status</th><th>Progress</th><th>Created</th></tr>
        </thead>
        <tbody>
          {props.jobs.map((job) => (
            <tr>
              <td><a href={`/dashboard/jobs/${job.id}`}>{job.id}</a></td>
              <td>{job.type}</td>
              <td>{job.status}</td>
              <td>{progressText(job)}</td>
              <td>{new Date(job.createdAt).toISOString().slice(0, 19).replace('T', ' ')}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Layout>
  )
}

// Follows the dashboard's own event stream (cookie-authenticated) and updates
// the status and progress in place; without scripts the page shows the state
// at load time and a reload shows the latest.
const LIVE_SCRIPT = `
(() => {
  const root = document.getElementById('job');
  const source = new EventSource(root.dataset.events);
  source.addEventListener('job', (event) => {
    const job = JSON.parse(event.data);
    const bar = document.getElementById('job-progress');
    document.getElementById('job-status').textContent = job.status;
    const unit = job.progress.unit ? ' ' + job.progress.unit : '';
    document.getElementById('job-progress-text').textContent =
      job.progress.total === null ? job.progress.done + unit : job.progress.done + ' / ' + job.progress.total + unit;
    if (job.progress.total !== null) { bar.max = job.progress.total; bar.value = job.progress.done; }
    if (['succeeded', 'failed', 'cancelled'].includes(job.status)) {
      source.close();
      const cancel = document.getElementById('job-cancel');
      if (cancel) cancel.remove();
    }
  });
})();
`

// A succeeded merge made a model version: link to it, where its lineage is shown.
function OutputVersion(props: { job: JobRow }) {
  const result = props.job.result as { model_id?: unknown; version?: unknown } | null
  if (props.job.type !== 'merge' || props.job.status !== 'succeeded' || typeof result?.model_id !== 'string') return null
  return (
    <>
      <dt>Output</dt>
      <dd><a id="job-output" href={`/dashboard/models#model-${result.model_id}`}>{`${result.model_id} · ${String(result.version)}`}</a></dd>
    </>
  )
}

export function JobPage(props: { csrf: string; job: JobRow; error?: string }) {
  const { job } = props
  return (
    <Layout title={`Job ${job.id}`} current="/dashboard/jobs" csrf={props.csrf}>
      {props.error ? <p class="error" role="alert">{props.error}</p> : null}
      <dl id="job" data-events={`/dashboard/jobs/${job.id}/events`}>
        <dt>Type</dt><dd>{job.type}</dd>
        <dt>Status</dt><dd id="job-status" aria-live="polite">{job.status}</dd>
        <dt><label for="job-progress">Progress</label></dt>
        <dd>
          <progress id="job-progress" max={job.progressTotal ?? undefined} value={job.progressTotal === null ? undefined : job.progressDone}></progress>{' '}
          <span id="job-progress-text">{progressText(job)}</span>
        </dd>
        <dt>Attempts</dt><dd>{job.attempts}</dd>
        {job.error ? (<><dt>Error</dt><dd>{`${job.error.code}: ${job.error.message}`}</dd></>) : null}
        <OutputVersion job={job} />
        {job.result ? (<><dt>Result</dt><dd><pre>{JSON.stringify(job.result, null, 2)}</pre></dd></>) : null}
      </dl>
      {isTerminal(job.status) ? null : (
        <form id="job-cancel" method="post" action={`/dashboard/jobs/${job.id}/cancel`}>
          <CsrfField token={props.csrf} />
          <button type="submit">Cancel job</button>
        </form>
      )}
      {isTerminal(job.status) ? null : html`<script>${raw(LIVE_SCRIPT)}</script>`}
    </Layout>
  )
}
