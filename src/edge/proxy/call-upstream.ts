import type { Env } from '../env.ts'
import { ApiError } from '../errors.ts'
import { openTargetHeaders, type RouteRow } from './route-store.ts'

export type UpstreamRequest = {
  path: string
  method: string
  headers: Record<string, string>
  body: string | null
  // Aborts the call (and any retry waiting) from outside: the guard refused
  // the request the call was started for.
  signal?: AbortSignal
}
export type UpstreamAnswer = { response: Response; target: number; url: string }

// The order targets are tried in: as listed for `fallback`; for
// `loadbalance`, one picked by weight first, then the rest as fallbacks.
function targetOrder(route: RouteRow): number[] {
  const indices = route.targets.map((_, index) => index)
  if (route.strategy.mode !== 'loadbalance' || indices.length < 2) return indices
  const total = route.targets.reduce((sum, target) => sum + target.weight, 0)
  let pick = Math.random() * total
  const first = indices.find((index) => (pick -= route.targets[index]!.weight) < 0) ?? 0
  return [first, ...indices.filter((index) => index !== first)]
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done)
    // Aborted already: an abort event will not come again.
    if (signal?.aborted) done()
    function done() {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      if (signal?.aborted) reject(signal.reason)
      else resolve()
    }
  })
}

function joinUrl(base: string, path: string): string {
  return `${base.replace(/\/+$/, '')}${path.startsWith('/') ? path : `/${path}`}`
}

// Calls the route's targets until one answers with a status the strategy
// accepts. 429 and 5xx are retried on the same target with backoff first
// (nothing has reached the client yet); a timeout or a refused connection
// moves on to the next target. All timed out: 504. None reachable: 502.
// An abort of request.signal rejects with its reason, whatever was tried.
export async function callUpstream(env: Env, route: RouteRow, request: UpstreamRequest): Promise<UpstreamAnswer> {
  const { strategy } = route
  const outer = request.signal
  let last: UpstreamAnswer | null = null
  let timedOut = false
  let failure = ''
  for (const index of targetOrder(route)) {
    const target = route.targets[index]!
    const url = joinUrl(target.url, request.path)
    const headers = { ...request.headers, ...(await openTargetHeaders(env, route.id, target, index)) }
    for (let attempt = 0; attempt <= strategy.retries; attempt++) {
      let response: Response
      // The timeout bounds the wait for the upstream's answer (its status and
      // headers), not how long its body streams: a long streamed completion
      // must not be cut at timeout_ms. The timer is cleared once the answer
      // starts, so timers do not pile up either.
      outer?.throwIfAborted()
      const controller = new AbortController()
      const timer = setTimeout(() => controller.abort(new DOMException(`no answer within ${strategy.timeout_ms} ms`, 'TimeoutError')), strategy.timeout_ms)
      const abort = () => controller.abort(outer!.reason)
      outer?.addEventListener('abort', abort)
      try {
        response = await fetch(url, { method: request.method, headers, body: request.body, signal: controller.signal, redirect: 'manual' })
      } catch (error) {
        outer?.throwIfAborted()
        timedOut ||= error instanceof Error && error.name === 'TimeoutError'
        failure = error instanceof Error ? error.message : String(error)
        break
      } finally {
        clearTimeout(timer)
        outer?.removeEventListener('abort', abort)
      }
      last = { response, target: index, url }
      if (!strategy.on_status.includes(response.status)) return last
      const retriable = response.status === 429 || response.status >= 500
      if (!retriable || attempt === strategy.retries) break
      await response.body?.cancel()
      await sleep(100 * 2 ** attempt, outer)
    }
  }
  if (last) return last
  if (timedOut) throw new ApiError(504, `The upstream did not answer within ${strategy.timeout_ms} ms`, { code: 'upstream_timeout' })
  throw new ApiError(502, `The upstream is unreachable: ${failure}`, { code: 'upstream_unreachable' })
}

// An upstream error keeps its status, inside Moat's envelope.
export async function upstreamError(answer: UpstreamAnswer): Promise<ApiError> {
  const text = await answer.response.text().catch(() => '')
  let message = text.slice(0, 500)
  try {
    const parsed = JSON.parse(text) as { error?: { message?: string } | string }
    message = typeof parsed.error === 'string' ? parsed.error : (parsed.error?.message ?? message)
  } catch {
    // Not JSON: the text itself is the message.
  }
  const status = answer.response.status as ConstructorParameters<typeof ApiError>[0]
  return new ApiError(status, `Upstream answered ${answer.response.status}: ${message || answer.response.statusText}`, { code: 'upstream_error' })
}
