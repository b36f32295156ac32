// A reporting range [start, end) split so that whole days are read from the
// daily rollups, whole hours from the hourly ones, and only the ragged edges
// from the raw ledger. Every millisecond of the range is in exactly one piece.

export const HOUR_MS = 60 * 60 * 1000
export const DAY_MS = 24 * HOUR_MS

export type RangePiece = { source: 'day' | 'hour' | 'raw'; start: number; end: number }

const floorTo = (ms: number, unit: number) => ms - (((ms % unit) + unit) % unit)
const ceilTo = (ms: number, unit: number) => floorTo(ms + unit - 1, unit)

function split(start: number, end: number, units: [RangePiece['source'], number][]): RangePiece[] {
  if (start >= end) return []
  const [head, ...rest] = units
  if (!head) return [{ source: 'raw', start, end }]
  const [source, unit] = head
  const inner = [ceilTo(start, unit), floorTo(end, unit)] as const
  if (inner[0] >= inner[1]) return split(start, end, rest)
  return [...split(start, inner[0], rest), { source, start: inner[0], end: inner[1] }, ...split(inner[1], end, rest)]
}

// With `hourly`, no piece is a day: a report per hour cannot read daily totals.
export function splitUsageRange(start: number, end: number, options: { hourly?: boolean } = {}): RangePiece[] {
  const units: [RangePiece['source'], number][] = options.hourly ? [['hour', HOUR_MS]] : [['day', DAY_MS], ['hour', HOUR_MS]]
  return split(start, end, units)
}
