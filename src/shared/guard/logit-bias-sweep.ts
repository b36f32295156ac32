// logit_bias sweeps against LLM routes: extraction of logits (Carlini et al.
// 2024, Morris et al. 2023) biases token after token and reads the
// logprobs. A client is suspicious when it has biased many distinct token
// ids, and more so when it asks for logprobs with the bias. Distinct ids
// are counted exactly up to `maxTracked` (a sorted bounded set); past that
// the count saturates, which is already far over any threshold.

export type LogitBiasOptions = { maxTracked: number }
export const DEFAULT_LOGIT_BIAS_OPTIONS: LogitBiasOptions = { maxTracked: 1024 }

export type LogitBiasState = { tokenIds: number[]; biasedRequests: number; biasedWithLogprobs: number }

export function createLogitBiasState(): LogitBiasState {
  return { tokenIds: [], biasedRequests: 0, biasedWithLogprobs: 0 }
}

function insertSorted(list: number[], value: number, max: number): void {
  let low = 0
  let high = list.length
  while (low < high) {
    const mid = (low + high) >>> 1
    if (list[mid]! < value) low = mid + 1
    else high = mid
  }
  if (list[low] === value || list.length >= max) return
  list.splice(low, 0, value)
}

export function observeLogitBias(state: LogitBiasState, options: LogitBiasOptions, logitBias: Record<string, number> | undefined, logprobs: boolean): void {
  const ids = Object.keys(logitBias ?? {})
  if (ids.length === 0) return
  state.biasedRequests++
  if (logprobs) state.biasedWithLogprobs++
  for (const id of ids) {
    const token = Number(id)
    if (Number.isInteger(token) && token >= 0) insertSorted(state.tokenIds, token, options.maxTracked)
  }
}
