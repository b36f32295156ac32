// Single-line JSON to stderr, so a supervisor (systemd, docker, the e2e tests)
// can parse runner logs line by line. Callers pass ids and counts, never the
// secret or a signature.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
export type LogFields = Record<string, unknown>

export type Logger = {
  debug(message: string, fields?: LogFields): void
  info(message: string, fields?: LogFields): void
  warn(message: string, fields?: LogFields): void
  error(message: string, fields?: LogFields): void
  child(fields: LogFields): Logger
}

export type LoggerOptions = {
  write?: (line: string) => void
  fields?: LogFields
  now?: () => number
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`))
  const now = options.now ?? Date.now
  const base = options.fields ?? {}
  const log = (level: LogLevel) => (message: string, fields: LogFields = {}) => {
    write(JSON.stringify({ time: new Date(now()).toISOString(), level, msg: message, ...base, ...fields }))
  }
  return {
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    child: (fields) => createLogger({ write, now, fields: { ...base, ...fields } }),
  }
}

// fetch reports every network failure as "fetch failed"; the cause says which one.
export function errorMessage(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const cause = error.cause instanceof Error ? error.cause.message : ''
  return cause && !error.message.includes(cause) ? `${error.message} (${cause})` : error.message
}
