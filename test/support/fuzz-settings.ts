// How many cases a fuzz property runs, and from which seed. `npm test` runs a
// quick pass; `npm run fuzz` sets FUZZ_RUNS=100000. The seed is fixed so that a
// failure reproduces; set FUZZ_SEED to explore further.
export type FuzzSettings = { numRuns: number; seed: number }

export const DEFAULT_FUZZ_SEED = 20261128

function positiveInteger(raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '') return undefined
  const value = Number(raw)
  return Number.isInteger(value) && value > 0 ? value : undefined
}

// `quickRuns` is the count for `npm test`; FUZZ_RUNS overrides it. Node tests
// pass process.env values, workerd tests pass the FUZZ_* bindings.
export function fuzzSettings(quickRuns: number, raw: { FUZZ_RUNS?: string; FUZZ_SEED?: string } = {}): FuzzSettings {
  return {
    numRuns: positiveInteger(raw.FUZZ_RUNS) ?? quickRuns,
    seed: positiveInteger(raw.FUZZ_SEED) ?? DEFAULT_FUZZ_SEED,
  }
}

// Long runs need a timeout that grows with the count: `perCaseMs` per case on
// top of a floor.
export function fuzzTimeout(settings: FuzzSettings, perCaseMs: number, floorMs = 30_000): number {
  return Math.max(floorMs, Math.ceil(settings.numRuns * perCaseMs))
}

// A property whose cases mostly wait (streams, polls) can run as several
// lanes at once, each from its own seed, so that a long run's count is
// reached in a fraction of the time. `npm test` keeps one lane.
export function fuzzLanes(settings: FuzzSettings, lanes: number): FuzzSettings[] {
  const count = Math.max(1, Math.min(lanes, settings.numRuns))
  return Array.from({ length: count }, (_, lane) => ({
    numRuns: Math.ceil(settings.numRuns / count) - (lane < (Math.ceil(settings.numRuns / count) * count - settings.numRuns) ? 1 : 0),
    seed: settings.seed + lane,
  }))
}
