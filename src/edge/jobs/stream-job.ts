import type { Context } from 'hono'
import { streamSSE } from 'hono/streaming'
import { isTerminal, jobView, type JobRow } from './job-view.ts'

// Server-sent events of one job: a 'job' event with the job each time it
// changes; the stream ends after a final state. D1 has no change feed: the
// stream polls the row and sends it when it changed.
export function streamJob(c: Context, first: JobRow, load: () => Promise<JobRow | undefined>, pollMs: number): Response {
  return streamSSE(c, async (stream) => {
    let row = first
    let sent = ''
    let eventId = 0
    while (!stream.aborted) {
      const view = JSON.stringify(jobView(row))
      if (view !== sent) {
        await stream.writeSSE({ event: 'job', data: view, id: String(++eventId) })
        sent = view
      }
      if (isTerminal(row.status)) break
      await stream.sleep(pollMs)
      const next = await load()
      if (!next) break
      row = next
    }
  })
}
