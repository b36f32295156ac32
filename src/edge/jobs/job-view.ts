import type { jobs } from '../db/schema.ts'
import { unixSeconds } from '../unix-seconds.ts'

export type JobRow = typeof jobs.$inferSelect

export const TERMINAL_STATUSES = ['succeeded', 'failed', 'cancelled'] as const

export function isTerminal(status: string): boolean {
  return (TERMINAL_STATUSES as readonly string[]).includes(status)
}

// The public shape of a job (API.md), times in Unix seconds.
export function jobView(row: JobRow) {
  return {
    id: row.id,
    object: 'job' as const,
    type: row.type,
    status: row.status,
    progress: { done: row.progressDone, total: row.progressTotal, unit: row.progressUnit },
    params: row.params,
    result: row.result ?? null,
    error: row.error ?? null,
    attempts: row.attempts,
    created_at: unixSeconds(row.createdAt),
    started_at: unixSeconds(row.startedAt),
    finished_at: unixSeconds(row.finishedAt),
  }
}
export type JobView = ReturnType<typeof jobView>
