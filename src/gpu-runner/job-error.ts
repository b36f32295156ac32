// A failure a job reports to the edge with a specific code; any other error a
// handler throws is reported as `job_failed`.
export class JobError extends Error {
  readonly code: string

  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'JobError'
    this.code = code
  }
}
