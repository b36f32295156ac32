import type { jobs } from '../db/schema.ts'

export type JobRow = typeof jobs.$inferSelect

export const TERMINAL_STATUSES = ['succeeded', 'failed', 'cancelled'] as const

export function isTerminal(status: string): boolean {
  return (TERMINAL_STATUSES as readonly string[]).includes(status)
}

const seconds = (ms: number | null) => (ms === null ? null : Math.floor(ms / 1000))

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
    created_at: seconds(row.createdAt)!,
    started_at: seconds(row.startedAt),
    finished_at: seconds(row.finishedAt),
  }
}
export type JobView = ReturnType<typeof jobView>
