import { describe, expect, it } from 'vitest'
import { DAY_MS, HOUR_MS, splitUsageRange } from '../../src/shared/billing/usage-range.ts'

const day0 = Date.UTC(2026, 10, 1)

describe('splitUsageRange', () => {
  it('reads whole days from daily rollups, whole hours from hourly ones and the edges raw', () => {
    const start = day0 + 90 * 60 * 1000 + 5
    const end = day0 + 3 * DAY_MS + 2 * HOUR_MS + 7
    expect(splitUsageRange(start, end)).toEqual([
      { source: 'raw', start, end: day0 + 2 * HOUR_MS },
      { source: 'hour', start: day0 + 2 * HOUR_MS, end: day0 + DAY_MS },
      { source: 'day', start: day0 + DAY_MS, end: day0 + 3 * DAY_MS },
      { source: 'hour', start: day0 + 3 * DAY_MS, end: day0 + 3 * DAY_MS + 2 * HOUR_MS },
      { source: 'raw', start: day0 + 3 * DAY_MS + 2 * HOUR_MS, end },
    ])
  })

  it('covers every millisecond once for many ranges', () => {
    let seed = 42
    const next = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed)
    for (let i = 0; i < 500; i++) {
      const start = day0 + (next() % (5 * DAY_MS))
      const end = start + (next() % (4 * DAY_MS))
      const pieces = splitUsageRange(start, end)
      let cursor = start
      for (const piece of pieces) {
        expect(piece.start).toBe(cursor)
        expect(piece.end).toBeGreaterThan(piece.start)
        if (piece.source === 'day') expect([piece.start % DAY_MS, piece.end % DAY_MS]).toEqual([0, 0])
        if (piece.source === 'hour') expect([piece.start % HOUR_MS, piece.end % HOUR_MS]).toEqual([0, 0])
        cursor = piece.end
      }
      expect(cursor).toBe(start === end ? start : end)
    }
  })

  it('uses no daily piece for an hourly report', () => {
    const pieces = splitUsageRange(day0 + 5, day0 + 2 * DAY_MS, { hourly: true })
    expect(pieces.map((piece) => piece.source)).toEqual(['raw', 'hour'])
  })

  it('is empty for an empty range and raw for a short one', () => {
    expect(splitUsageRange(day0, day0)).toEqual([])
    expect(splitUsageRange(day0 + 1, day0 + 1000)).toEqual([{ source: 'raw', start: day0 + 1, end: day0 + 1000 }])
  })
})
