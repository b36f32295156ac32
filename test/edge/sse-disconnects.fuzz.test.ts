import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import fc from 'fast-check'
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import type { Env } from '../../src/edge/env.ts'
import worker from '../../src/edge/index.ts'
import { createId } from '../../src/shared/ids.ts'
import type { UsageEvent } from '../../src/shared/usage-event.ts'
import { fuzzLanes, fuzzSettings, fuzzTimeout } from '../support/fuzz-settings.ts'
import { faultPlan, faultyD1 } from './fault-injection.ts'
import { call, createTenant, json, sentUsageEvents, type Tenant } from './helpers.ts'

// Server-sent event clients that leave at random points: before the first
// byte, after some bytes, after the end. Streamed chat completions (through a
// fake upstream in this isolate) and job event streams. Nothing hangs, nothing
// rejects unhandled, the upstream is let go, a streamed chat is metered once
// and only for what the client took (see README, "Reliability"), a job stream
// stops polling, and a client beside it is served in full.
//
// A case is two streams and mostly waits (for bytes, for polls), so a long run
// goes in 50 lanes at once, each from its own seed: `npm run fuzz` checks
// FUZZ_RUNS cases of each property; `npm test` 15, in one lane.
const settings = fuzzSettings(15, env)
const lanes = fuzzLanes(settings, settings.numRuns > 1000 ? 50 : 1)
const cases = { numRuns: settings.numRuns, seed: settings.seed }
const BASE = 'http://moat.test'
const encoder = new TextEncoder()
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const decoder = new TextDecoder()

type ClientExit = { kind: 'before' } | { kind: 'after-bytes'; bytes: number } | { kind: 'end' }

// Reads a streamed response as a client that leaves at `exit` would. A
// client also gives up when `giveUp` settles (a stalled stream sends nothing
// more); what a read pending at that moment brings is still counted.
async function readAs(response: Response, exit: ClientExit, giveUp?: Promise<unknown>): Promise<{ text: string; complete: boolean }> {
  const reader = response.body!.getReader()
  if (exit.kind === 'before') {
    await reader.cancel('client left before the first byte')
    return { text: '', complete: false }
  }
  const gaveUp = giveUp?.then(() => null)
  let text = ''
  for (;;) {
    const pending = reader.read()
    const next = gaveUp ? await Promise.race([pending, gaveUp]) : await pending
    if (next === null) {
      await reader.cancel('client gave up')
      const last = await pending
      if (!last.done) text += decoder.decode(last.value, { stream: true })
      return { text, complete: false }
    }
    if (next.done) return { text, complete: true }
    text += decoder.decode(next.value, { stream: true })
    if (exit.kind === 'after-bytes' && text.length >= exit.bytes) {
      await reader.cancel('client left mid-stream')
      return { text, complete: false }
    }
  }
}

// The data of each complete event.
const sseData = (text: string) =>
  text
    .split('\n\n')
    .slice(0, -1)
    .flatMap((event) => event.split('\n').filter((line) => line.startsWith('data: ')).map((line) => line.slice(6)))

afterEach(() => {
  vi.restoreAllMocks()
})

describe('streamed chat completions, clients leaving', () => {
  let tenant: Tenant
  const PROMPT_TOKENS = 12

  type UpstreamCase = { words: number; reportUsage: boolean; cuts: number[]; stallAfter: number | null }
  type UpstreamState = { cancelled: boolean; finished: boolean; usageSent: boolean; stalled: () => void; stall: Promise<void> }
  const upstreams = new Map<string, { plan: UpstreamCase; state: UpstreamState }>()

  // The model owner's endpoint: the request's `model` names the plan. Its SSE
  // bytes are cut at random points (events split across reads), and it may
  // stall (send nothing more until cancelled).
  function upstreamBody(plan: UpstreamCase, state: UpstreamState): ReadableStream<Uint8Array> {
    const base = { id: 'chatcmpl-fuzz', object: 'chat.completion.chunk', created: 1, model: 'm' }
    const events = Array.from({ length: plan.words }, (_, i) => ({ ...base, choices: [{ index: 0, delta: { content: `w${i} ` }, finish_reason: null }] }))
    const finish = { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }
    const usage = { ...base, choices: [], usage: { prompt_tokens: PROMPT_TOKENS, completion_tokens: plan.words, total_tokens: PROMPT_TOKENS + plan.words } }
    const text = [...events, finish, ...(plan.reportUsage ? [usage] : [])].map((event) => `data: ${JSON.stringify(event)}\n\n`).join('') + 'data: [DONE]\n\n'
    const bytes = encoder.encode(text)
    const usageEnds = plan.reportUsage ? text.lastIndexOf('data: [DONE]') : Infinity
    const cuts = [...new Set(plan.cuts.map((cut) => Math.floor(cut * bytes.length)))].filter((cut) => cut > 0 && cut < bytes.length).sort((a, b) => a - b)
    const pieces = [0, ...cuts].map((start, i) => bytes.slice(start, [...cuts, bytes.length][i]))
    let sent = 0
    let offset = 0
    let unstall = () => {}
    const stalled = new Promise<void>((resolve) => (unstall = resolve))
    return new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          if (plan.stallAfter !== null && sent >= plan.stallAfter) {
            state.stalled()
            return stalled
          }
          const piece = pieces[sent++]
          if (!piece) {
            state.finished = true
            return controller.close()
          }
          offset += piece.length
          if (offset >= usageEnds) state.usageSent = true
          controller.enqueue(piece)
        },
        cancel() {
          state.cancelled = true
          unstall()
        },
      },
      { highWaterMark: 0 },
    )
  }

  beforeAll(async () => {
    tenant = await createTenant('sse-chat')
    for (const [name, policy] of [
      ['tok1', { stream_window_tokens: 1 }],
      ['tok3', { stream_window_tokens: 3 }],
      ['chars', { stream_window_chars: 40 }],
    ] as const) {
      const res = await call('/v1/routes', { key: tenant.adminKey, body: { name, kind: 'openai', upstream_url: 'https://upstream.example/v1', policy } })
      expect(res.status, await res.clone().text()).toBe(201)
    }
  })

  function stubUpstream() {
    vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
      const request = new Request(input, init)
      const body = (await request.json()) as { model: string; stream_options?: { include_usage?: boolean } }
      expect(body.stream_options?.include_usage).toBe(true)
      const upstream = upstreams.get(body.model)!
      return new Response(upstreamBody(upstream.plan, upstream.state), { headers: { 'content-type': 'text/event-stream' } })
    })
  }

  // One streamed chat, with usage events recorded as the queue would get them.
  async function streamChat(route: string, plan: UpstreamCase) {
    const model = createId('m')
    let stalled = () => {}
    const stall = new Promise<void>((resolve) => (stalled = resolve))
    const state: UpstreamState = { cancelled: false, finished: false, usageSent: false, stalled, stall }
    upstreams.set(model, { plan, state })
    const usage: UsageEvent[] = []
    const recording = { ...(env as unknown as Env), USAGE: { send: async (message: unknown) => void usage.push(...sentUsageEvents([message])) } } as unknown as Env
    const ctx = createExecutionContext()
    const response = await worker.fetch(
      new Request(`${BASE}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tenant.adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: `${route}/${model}`, stream: true, messages: [{ role: 'user', content: 'count for me' }] }),
      }),
      recording,
      ctx,
    )
    return { response, state, usage, settled: () => waitOnExecutionContext(ctx) }
  }

  function meters(usage: UsageEvent[]) {
    const byMeter = new Map<string, number>()
    for (const event of usage) {
      expect(byMeter.has(event.meter), `${event.meter} metered twice`).toBe(false)
      byMeter.set(event.meter, event.value)
    }
    expect(new Set(usage.map((event) => event.id)).size).toBe(usage.length)
    return Object.fromEntries(byMeter)
  }

  const upstreamCase = fc.record({
    words: fc.integer({ min: 0, max: 30 }),
    reportUsage: fc.boolean(),
    cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 }),
    stallAfter: fc.option(fc.nat(12), { nil: null }),
  })
  const exit: fc.Arbitrary<ClientExit> = fc.oneof(
    fc.constant({ kind: 'before' as const }),
    fc.integer({ min: 1, max: 4000 }).map((bytes) => ({ kind: 'after-bytes' as const, bytes })),
    fc.constant({ kind: 'end' as const }),
  )

  it('meters once, for what the client took, lets the upstream go, and serves the client beside it', { timeout: fuzzTimeout(settings, 100, 60_000) }, async () => {
    stubUpstream()
    const outcomes = new Map<string, number>()
    const property = () => fc.asyncProperty(fc.constantFrom('tok1', 'tok3', 'chars'), upstreamCase, exit, fc.integer({ min: 0, max: 30 }), async (route, plan, leave, otherWords) => {
        const leaving = await streamChat(route, plan)
        const beside = await streamChat(route, { words: otherWords, reportUsage: true, cuts: [0.5], stallAfter: null })
        expect(leaving.response.status).toBe(200)
        // A stalled upstream sends nothing more: its client gives up a little after the stall.
        const giveUp = leaving.state.stall.then(() => sleep(20))
        const [got, full] = await Promise.all([readAs(leaving.response, leave, giveUp), readAs(beside.response, { kind: 'end' })])
        const client = leave
        await Promise.all([leaving.settled(), beside.settled()])

        // The client beside it got the whole answer and was billed the upstream's report.
        const besideData = sseData(full.text)
        expect(besideData.at(-1)).toBe('[DONE]')
        expect(besideData.filter((data) => data.includes('"content"')).length).toBe(otherWords)
        expect(meters(beside.usage)).toEqual({ requests: 1, 'tokens.input': PROMPT_TOKENS, ...(otherWords > 0 ? { 'tokens.output': otherWords } : {}) })

        // The leaving client: the upstream was read to its end or let go.
        expect(leaving.state.cancelled || leaving.state.finished).toBe(true)
        const deltasTaken = sseData(got.text).filter((data) => /"content":"w\d+ "/.test(data)).length
        const billed = meters(leaving.usage)
        expect(billed.requests).toBe(1)
        const upstreamReport = { requests: 1, 'tokens.input': PROMPT_TOKENS, ...(plan.words > 0 ? { 'tokens.output': plan.words } : {}) }
        const taken = { requests: 1, ...(deltasTaken > 0 ? { 'tokens.output': deltasTaken } : {}) }
        if (got.complete) {
          expect(sseData(got.text).at(-1)).toBe('[DONE]')
          expect(deltasTaken).toBe(plan.words)
          expect(billed).toEqual(plan.reportUsage ? upstreamReport : taken)
        } else if ('tokens.input' in billed) {
          // The upstream had reported its prompt before the client left.
          expect(leaving.state.usageSent).toBe(true)
          expect(billed).toEqual({ ...taken, 'tokens.input': PROMPT_TOKENS })
        } else {
          expect(billed).toEqual(taken)
        }
        const outcome = `${client.kind}${got.complete ? ' complete' : ''}${'tokens.input' in billed ? ' input billed' : ''}`
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
      })
    await Promise.all(lanes.map((lane) => fc.assert(property(), lane)))
    console.log(`sse chat: ${cases.numRuns} cases in ${lanes.length} lane(s), seed ${cases.seed}: ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')}`)
  })
})

describe('job event streams, clients leaving', () => {
  let tenant: Tenant
  const POLL_MS = 5

  beforeAll(async () => {
    tenant = await createTenant('sse-jobs')
  })

  async function insertJob(): Promise<string> {
    const id = createId('job')
    const now = Date.now()
    await env.DB.prepare(
      `INSERT INTO jobs (id, tenant_id, type, params, status, progress_done, progress_total, progress_unit, attempts, created_at, updated_at)
       VALUES (?1, ?2, 'verify_artifact', '{}', 'running', 0, 100, 'files', 1, ?3, ?3)`,
    )
      .bind(id, tenant.tenantId, now)
      .run()
    return id
  }

  // A job event stream on an env whose D1 counts statements: the stream's
  // polling shows up as a growing count.
  async function openStream(jobId: string) {
    const plan = faultPlan()
    const counted = { ...(env as unknown as Env), MOAT_SSE_POLL_MS: String(POLL_MS), DB: faultyD1(plan, env.DB) } as Env
    const response = await worker.fetch(
      new Request(`${BASE}/v1/jobs/${jobId}/events`, { headers: { authorization: `Bearer ${tenant.adminKey}` } }),
      counted,
      createExecutionContext(),
    )
    expect(response.status).toBe(200)
    return { response, polls: () => plan.steps.filter((step) => step.includes('"jobs"')).length }
  }

  // Polling has stopped: no job query in several poll intervals.
  async function expectStopped(polls: () => number) {
    await vi.waitFor(
      async () => {
        const before = polls()
        await sleep(POLL_MS * 6)
        expect(polls()).toBe(before)
      },
      { timeout: 5000, interval: 1 },
    )
  }

  const progressSteps = fc.array(fc.integer({ min: 1, max: 30 }), { maxLength: 6 })
  const finalStatus = fc.constantFrom('succeeded', 'failed', 'cancelled', null)
  const exit: fc.Arbitrary<ClientExit> = fc.oneof(
    fc.constant({ kind: 'before' as const }),
    fc.integer({ min: 1, max: 1500 }).map((bytes) => ({ kind: 'after-bytes' as const, bytes })),
    fc.constant({ kind: 'end' as const }),
  )

  it('stops polling when the client leaves, and a client beside it sees the job to its end', { timeout: fuzzTimeout(settings, 200, 60_000) }, async () => {
    const outcomes = new Map<string, number>()
    const property = () => fc.asyncProperty(progressSteps, finalStatus, exit, async (steps, final, leave) => {
        const jobId = await insertJob()
        const leaving = await openStream(jobId)
        const beside = await openStream(jobId)
        // A job that never finishes never ends its stream: its clients give up
        // a few polls after the last change.
        let changesDone = () => {}
        const giveUp = new Promise<void>((resolve) => (changesDone = resolve)).then(() => sleep(POLL_MS * 4))
        const client = leave
        const reading = readAs(leaving.response, client, giveUp)
        const besideReading = readAs(beside.response, { kind: 'end' }, giveUp)
        let done = 0
        for (const step of steps) {
          done = Math.min(100, done + step)
          await env.DB.prepare('UPDATE jobs SET progress_done = ?2, updated_at = ?3 WHERE id = ?1').bind(jobId, done, Date.now()).run()
          await sleep(POLL_MS)
        }
        if (final) await env.DB.prepare('UPDATE jobs SET status = ?2, finished_at = ?3 WHERE id = ?1').bind(jobId, final, Date.now()).run()
        else changesDone()
        const [got, full] = await Promise.all([reading, besideReading])

        for (const data of sseData(got.text).slice(0, -1)) expect(JSON.parse(data)).toMatchObject({ id: jobId, object: 'job' })
        if (got.complete) expect(JSON.parse(sseData(got.text).at(-1)!).status).toBe(final)
        if (final) {
          expect(full.complete).toBe(true)
          expect(JSON.parse(sseData(full.text).at(-1)!)).toMatchObject({ id: jobId, status: final, progress: { done } })
        }
        await expectStopped(leaving.polls)
        await expectStopped(beside.polls)
        const outcome = `${client.kind}${got.complete ? ' complete' : ''}`
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
      })
    await Promise.all(lanes.map((lane) => fc.assert(property(), lane)))
    console.log(`sse jobs: ${cases.numRuns} cases in ${lanes.length} lane(s), seed ${cases.seed}: ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')}`)
  })

  it("refuses another tenant's job with 404, and ends a stream whose job row goes away", async () => {
    const other = await createTenant('sse-other')
    const jobId = await insertJob()
    const res = await call(`/v1/jobs/${jobId}/events`, { key: other.adminKey })
    expect(res.status).toBe(404)
    expect((await json(res)).error.code).toBe('job_not_found')

    const stream = await openStream(jobId)
    const reader = stream.response.body!.getReader()
    expect(decoder.decode((await reader.read()).value)).toMatch(/"status":"running"/)
    await env.DB.prepare('DELETE FROM jobs WHERE id = ?1').bind(jobId).run()
    expect((await reader.read()).done).toBe(true)
    await expectStopped(stream.polls)
  })
})
