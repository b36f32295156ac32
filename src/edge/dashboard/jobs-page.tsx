import { and, desc, eq } from 'drizzle-orm'
import { html, raw } from 'hono/html'
import type { Database } from '../db/client.ts'
import { jobs } from '../db/schema.ts'
import { isTerminal, type JobRow } from '../jobs/job-view.ts'
import { CsrfField, Layout } from './layout.tsx'

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

export function JobsPage(props: { csrf: string; jobs: JobRow[] }) {
  return (
    <Layout title="Jobs" current="/dashboard/jobs" csrf={props.csrf}>
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
