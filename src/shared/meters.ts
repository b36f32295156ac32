// The registry of meters: every billable unit Moat records has a name here,
// with its unit and how it aggregates over a period. Usage events naming any
// other meter are refused, so a typo never becomes an unbilled meter.
export type Meter = { unit: string; aggregation: 'sum'; description: string }

export const METERS = {
  requests: { unit: 'request', aggregation: 'sum', description: 'Authenticated API requests served (not 5xx)' },
  'artifacts.bytes': { unit: 'byte', aggregation: 'sum', description: 'Bytes of model files and upload parts stored' },
  'jobs.created': { unit: 'job', aggregation: 'sum', description: 'Jobs created' },
  'moderation.inputs': { unit: 'input', aggregation: 'sum', description: 'Texts moderated' },
  'moderation.chars': { unit: 'character', aggregation: 'sum', description: 'Characters moderated' },
  'tokens.input': { unit: 'token', aggregation: 'sum', description: 'Prompt tokens through the proxy' },
  'tokens.output': { unit: 'token', aggregation: 'sum', description: 'Completion tokens through the proxy' },
  'predict.rows': { unit: 'row', aggregation: 'sum', description: 'Rows predicted by hosted models' },
  'merge.bytes': { unit: 'byte', aggregation: 'sum', description: 'Bytes of tensors processed by merges' },
  'runner.seconds': { unit: 'second', aggregation: 'sum', description: 'Runner time spent on jobs' },
} as const satisfies Record<string, Meter>

export type MeterName = keyof typeof METERS

export const METER_NAMES = Object.keys(METERS) as MeterName[]

export function isMeterName(name: string): name is MeterName {
  return Object.hasOwn(METERS, name)
}
