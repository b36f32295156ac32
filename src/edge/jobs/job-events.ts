import { eq } from 'drizzle-orm'
import { database } from '../db/client.ts'
import { jobs } from '../db/schema.ts'
import type { Env } from '../env.ts'
import { emitEvent, eventId, type EmitOptions } from '../webhooks/emit-event.ts'
import { isTerminal, jobView } from './job-view.ts'

// `job.succeeded`, `job.failed` or `job.cancelled`, once per job: the event id
// is derived from the job and its final state.
export async function emitJobFinished(env: Env, jobId: string, options: EmitOptions = {}): Promise<void> {
  const [row] = await database(env).select().from(jobs).where(eq(jobs.id, jobId))
  if (!row || !isTerminal(row.status)) return
  const job = jobView(row)
  await emitEvent(env, { id: await eventId(job.id, job.status), tenantId: row.tenantId, type: `job.${job.status}`, data: job }, options)
}
