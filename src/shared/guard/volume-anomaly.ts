// Volume anomalies: requests per interval (a minute by default) against an
// exponentially weighted moving average and variance of earlier intervals.
// The z-score of the running interval is read against the baseline as it was
// before that interval, so a burst cannot raise its own bar. Until
// `warmupIntervals` intervals have passed, the baseline is the tenant's
// expected rate (`baselineRate`) with Poisson variance.

export type VolumeOptions = { intervalMs: number; alpha: number; warmupIntervals: number; baselineRate: number }
export const DEFAULT_VOLUME_OPTIONS: VolumeOptions = { intervalMs: 60_000, alpha: 0.1, warmupIntervals: 10, baselineRate: 60 }

export type VolumeState = { intervalStart: number; count: number; mean: number; variance: number; intervals: number }

export function createVolumeState(options: VolumeOptions, now: number): VolumeState {
  return { intervalStart: now - (now % options.intervalMs), count: 0, mean: options.baselineRate, variance: options.baselineRate, intervals: 0 }
}

function closeInterval(state: VolumeState, options: VolumeOptions, count: number): void {
  const difference = count - state.mean
  const increment = options.alpha * difference
  state.mean += increment
  state.variance = (1 - options.alpha) * (state.variance + difference * increment)
  state.intervals++
}

export function observeVolume(state: VolumeState, options: VolumeOptions, now: number, amount = 1): void {
  const start = now - (now % options.intervalMs)
  if (start > state.intervalStart) {
    closeInterval(state, options, state.count)
    // Intervals with no requests at all are part of the baseline too, up to
    // the point where the average has forgotten everything.
    const idle = Math.min(Math.floor((start - state.intervalStart) / options.intervalMs) - 1, Math.ceil(5 / options.alpha))
    for (let i = 0; i < idle; i++) closeInterval(state, options, 0)
    state.intervalStart = start
    state.count = 0
  }
  state.count += amount
}

export function volumeZ(state: VolumeState, options: VolumeOptions): number {
  const warm = state.intervals >= options.warmupIntervals
  const mean = warm ? state.mean : Math.max(state.mean, options.baselineRate)
  // A floor of one request's Poisson noise keeps a silent baseline from
  // making a handful of requests look infinite.
  const variance = Math.max(state.variance, mean, 1)
  return (state.count - mean) / Math.sqrt(variance)
}
