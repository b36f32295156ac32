import { Hono, type Context } from 'hono'
import { hardenChatRequest, logprobPolicySchema, roundLogprobs } from '../../shared/proxy/logprob-policy.ts'
import { createSseReader, type SseEvent } from '../../shared/proxy/sse-reader.ts'
import type { GuardPolicyInput } from '../../shared/guard/guard-policy.ts'
import { database } from '../db/client.ts'
import type { AppEnv } from '../env.ts'
import { ApiError } from '../errors.ts'
import { guardAfter, guardAround } from '../guard/guard-hook.ts'
import { requireScope } from '../middleware/auth.ts'
import { callUpstream, upstreamError, type UpstreamAnswer } from '../proxy/call-upstream.ts'
import { blockedCategories, proxyModerator, recordModeration, type ProxyModerator } from '../proxy/proxy-moderation.ts'
import type { RoutePolicy } from '../proxy/route-config.ts'
import { findRouteForProxy, routePolicyOf } from '../proxy/route-store.ts'
import { meterUsage } from '../usage/meter-usage.ts'

// POST /v1/chat/completions with `model: "<route>/<upstream model>"`: an
// OpenAI-compatible passthrough to a model owner's endpoint, with input and
// output moderation, logprob hardening, the guard and token metering.

type ChatBody = Record<string, unknown> & { model: string; messages: unknown[]; stream?: boolean }

const UPSTREAM_HEADER = 'x-moat-upstream'
// Set to `flagged` when input moderation flagged the messages (and let them through).
const MODERATION_HEADER = 'x-moat-moderation'

function messageTexts(messages: unknown[]): { texts: string[]; set: (index: number, text: string) => void } {
  const slots: { text: string; write: (text: string) => void }[] = []
  for (const message of messages) {
    const content = (message as { content?: unknown } | null)?.content
    if (typeof content === 'string') slots.push({ text: content, write: (text) => ((message as { content: string }).content = text) })
    else if (Array.isArray(content)) {
      for (const part of content as { type?: string; text?: unknown }[]) {
        if (part?.type === 'text' && typeof part.text === 'string') slots.push({ text: part.text, write: (text) => (part.text = text) })
      }
    }
  }
  return { texts: slots.map((slot) => slot.text), set: (index, text) => slots[index]!.write(text) }
}

async function readBody(c: Context<AppEnv>): Promise<ChatBody> {
  let body: unknown
  try {
    body = await c.req.json()
  } catch {
    throw new ApiError(400, 'Malformed JSON body', { code: 'invalid_json' })
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new ApiError(400, 'The body must be a JSON object', { code: 'invalid_value' })
  const { model, messages } = body as Partial<ChatBody>
  if (typeof model !== 'string' || !model.includes('/')) {
    throw new ApiError(400, "'model' must be '<route>/<upstream model>'", { code: 'invalid_value', param: 'model' })
  }
  if (!Array.isArray(messages) || messages.length === 0) throw new ApiError(400, "'messages' must be a non-empty array", { code: 'invalid_value', param: 'messages' })
  return body as ChatBody
}

// Input moderation: a block refuses the request (400 naming the categories);
// a redaction rewrites the text before it leaves.
function moderateInput(c: Context<AppEnv>, source: string, moderator: ProxyModerator, body: ChatBody): string | null {
  if (!moderator.policy.input) return null
  const { texts, set } = messageTexts(body.messages)
  let verdict: string | null = null
  for (const [index, text] of texts.entries()) {
    const result = moderator.check(text)
    recordModeration(c, { source, direction: 'input', result })
    if (result.moat.action === 'block') {
      throw new ApiError(400, `The input was blocked by the moderation policy (${blockedCategories(result).join(', ') || 'blocklist'})`, {
        code: 'content_filter',
        param: 'messages',
      })
    }
    if (result.moat.action === 'redact' && result.moat.redacted !== undefined) set(index, result.moat.redacted)
    if (result.flagged) verdict = 'flagged'
  }
  return verdict
}

async function meterTokens(c: Context<AppEnv>, usage: unknown): Promise<{ prompt: number; completion: number }> {
  const prompt = Number((usage as { prompt_tokens?: unknown } | null)?.prompt_tokens ?? 0)
  const completion = Number((usage as { completion_tokens?: unknown } | null)?.completion_tokens ?? 0)
  if (Number.isInteger(prompt) && prompt > 0) await meterUsage(c, 'tokens.input', prompt)
  if (Number.isInteger(completion) && completion > 0) await meterUsage(c, 'tokens.output', completion)
  return { prompt: Number.isInteger(prompt) ? prompt : 0, completion: Number.isInteger(completion) ? completion : 0 }
}

async function answerWhole(c: Context<AppEnv>, route: string, answer: UpstreamAnswer, policy: RoutePolicy, moderator: ProxyModerator, finish: (tokens: number) => Promise<void>) {
  const completion = (await answer.response.json().catch(() => null)) as { choices?: { message?: { content?: unknown }; finish_reason?: string }[]; usage?: unknown } | null
  if (!completion) throw new ApiError(502, 'The upstream answered with something that is not JSON', { code: 'upstream_error' })
  if (moderator.policy.output) {
    for (const choice of completion.choices ?? []) {
      const text = choice.message?.content
      if (typeof text !== 'string') continue
      const result = moderator.check(text)
      recordModeration(c, { source: route, direction: 'output', result })
      if (result.moat.action === 'block') {
        choice.message!.content = null
        choice.finish_reason = 'content_filter'
      } else if (result.moat.action === 'redact' && result.moat.redacted !== undefined) choice.message!.content = result.moat.redacted
    }
  }
  roundLogprobs(completion, (policy.logprobs ?? logprobPolicySchema.parse({})).round_decimals)
  const tokens = await meterTokens(c, completion.usage)
  await finish(tokens.prompt + tokens.completion)
  return c.json(completion, 200, { [UPSTREAM_HEADER]: String(answer.target) })
}

// Streams the answer back while holding `stream_window_chars` of text (or
// `stream_window_tokens` deltas): each
// time that much has gathered, everything so far is moderated; a block ends
// the stream with a `content_filter` finish, and what was held is never sent.
// The input's verdict is known before the first byte and rides in a header,
// as on a whole answer; the output's can only show in the stream itself.
//
// Tokens are metered once, when both the upstream and the client are done. A
// client that took the whole stream is billed the upstream's last `usage`
// report. Output is otherwise billed as the content deltas the client's
// connection took, one token each, as OpenAI-style upstreams stream them:
// for a client that left early (even if the upstream had finished), and for
// an upstream that never reported; input tokens only as the upstream reported
// them, never guessed. A client that leaves cancels the upstream at once.
function answerStream(
  c: Context<AppEnv>,
  route: string,
  answer: UpstreamAnswer,
  policy: RoutePolicy,
  moderator: ProxyModerator,
  clientWantsUsage: boolean,
  inputVerdict: string | null,
  finish: (tokens: number) => Promise<void>,
) {
  const decimals = (policy.logprobs ?? logprobPolicySchema.parse({})).round_decimals
  const encoder = new TextEncoder()
  const reader = createSseReader()
  let text = ''
  let held: { event: string; deltas: number }[] = []
  let heldChars = 0
  let blocked = false
  let recorded = false
  let last: { id?: string; created?: number; model?: string } = {}
  let usage: unknown = null
  let servedDeltas = 0
  const upstream = answer.response.body!.pipeThrough(new TextDecoderStream()).getReader()

  // Events wait in a queue until the connection takes them (the body pulls
  // one at a time), so a delta counts as served when it was handed over.
  const { readable, writable } = new TransformStream<{ bytes: Uint8Array; deltas: number }, { bytes: Uint8Array; deltas: number }>()
  const writer = writable.getWriter()
  const send = (text: string, deltas = 0) => writer.write({ bytes: encoder.encode(text), deltas })
  const out = readable.getReader()
  // Settles when the client has taken the whole stream, or left.
  let bodyEnded = () => {}
  const bodyDone = new Promise<void>((resolve) => (bodyEnded = resolve))
  let clientLeft = false
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const next = await out.read().catch((error: unknown) => {
          bodyEnded()
          throw error
        })
        // Taken from the queue after the client left: never handed over.
        if (clientLeft) return
        if (next.done) {
          bodyEnded()
          return controller.close()
        }
        servedDeltas += next.value.deltas
        controller.enqueue(next.value.bytes)
      },
      // The client left: stop the upstream now rather than when it next sends.
      async cancel(reason) {
        clientLeft = true
        bodyEnded()
        await Promise.all([upstream.cancel(reason).catch(() => undefined), out.cancel(reason).catch(() => undefined)])
      },
    },
    { highWaterMark: 0 },
  )

  const release = async () => {
    for (const { event, deltas } of held) await send(event, deltas)
    held = []
    heldChars = 0
  }
  // `final`: the whole answer, which the client sends back on its next turn.
  const checkpoint = async (final = false): Promise<boolean> => {
    const result = moderator.policy.output ? moderator.check(text, { remember: final }) : null
    // A stream is recorded once, at the first window that moderation flags.
    if (result && !recorded) recorded = recordModeration(c, { source: route, direction: 'output', result })
    if (result?.moat.action === 'block') {
      blocked = true
      const stop = { id: last.id, object: 'chat.completion.chunk', created: last.created, model: last.model, choices: [{ index: 0, delta: {}, finish_reason: 'content_filter' }] }
      await send(`data: ${JSON.stringify(stop)}\n\ndata: [DONE]\n\n`)
      return false
    }
    await release()
    return true
  }
  const handle = async (event: SseEvent) => {
    if (event.data === null || event.data === '[DONE]') return
    let chunk: { id?: string; created?: number; model?: string; choices?: { delta?: { content?: unknown } }[]; usage?: unknown }
    try {
      chunk = JSON.parse(event.data)
    } catch {
      return
    }
    last = { id: chunk.id, created: chunk.created, model: chunk.model }
    if (chunk.usage) {
      // An upstream may report usage more than once (running totals): the last report counts.
      usage = chunk.usage
      if (!clientWantsUsage && (chunk.choices?.length ?? 0) === 0) return
    }
    roundLogprobs(chunk, decimals)
    const delta = (chunk.choices ?? []).map((choice) => (typeof choice.delta?.content === 'string' ? choice.delta.content : '')).join('')
    text += delta
    held.push({ event: `data: ${JSON.stringify(chunk)}\n\n`, deltas: delta ? 1 : 0 })
    heldChars += policy.stream_window_tokens ? (delta ? 1 : 0) : delta.length
    if (heldChars >= (policy.stream_window_tokens ?? policy.stream_window_chars)) await checkpoint()
  }
  const meterStream = async (): Promise<number> => {
    if (usage && !clientLeft) {
      const metered = await meterTokens(c, usage)
      return metered.prompt + metered.completion
    }
    const { prompt } = usage ? await meterTokens(c, { prompt_tokens: (usage as { prompt_tokens?: unknown }).prompt_tokens }) : { prompt: 0 }
    if (servedDeltas > 0) await meterUsage(c, 'tokens.output', servedDeltas)
    return prompt + servedDeltas
  }

  // Runs after the response has started; the request stays alive until it ends.
  const pump = async () => {
    try {
      for (;;) {
        const next = await upstream.read()
        if (next.done) break
        for (const event of reader.push(next.value)) {
          await handle(event)
          if (blocked) break
        }
        if (blocked) break
      }
      if (blocked) await upstream.cancel()
      else {
        for (const event of reader.rest()) await handle(event)
        if (!blocked && (await checkpoint(true))) await send('data: [DONE]\n\n')
      }
      await writer.close()
    } catch (error) {
      await writer.abort(error).catch(() => undefined)
      await upstream.cancel().catch(() => undefined)
    }
  }
  // Metered once both ends are done: what the client took is known only then.
  const settle = async () => {
    await Promise.all([pump(), bodyDone])
    await finish(await meterStream())
  }
  c.executionCtx.waitUntil(
    settle().catch((error: unknown) =>
      console.error(JSON.stringify({ level: 'error', request_id: c.get('requestId'), message: `settling a streamed chat failed: ${String(error)}` })),
    ),
  )
  return new Response(body, {
    headers: {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      [UPSTREAM_HEADER]: String(answer.target),
      ...(inputVerdict ? { [MODERATION_HEADER]: inputVerdict } : {}),
    },
  })
}

export function chatCompletionRoutes() {
  const app = new Hono<AppEnv>()
  app.post('/v1/chat/completions', requireScope('inference'), async (c) => {
    const body = await readBody(c)
    const slash = body.model.indexOf('/')
    const routeName = body.model.slice(0, slash)
    const upstreamModel = body.model.slice(slash + 1)
    const tenantId = c.get('auth').tenantId
    const route = await findRouteForProxy(database(c.env), tenantId, routeName).catch(() => {
      throw new ApiError(404, `No route named '${routeName}'`, { code: 'model_not_found', param: 'model' })
    })
    if (route.kind !== 'openai') throw new ApiError(400, `Route '${routeName}' is a ${route.kind} route`, { code: 'invalid_value', param: 'model' })
    const policy = routePolicyOf(route)
    const violation = hardenChatRequest(body, policy.logprobs ?? logprobPolicySchema.parse({}))
    if (violation) throw new ApiError(400, violation.message, { code: violation.code, param: violation.param })
    const shared = await proxyModerator(c.env, tenantId, policy.moderation)
    // Checked texts are remembered for a conversation, whose messages come
    // again on its next turn; one message is most often a one-shot call whose
    // text never comes again, and keeping it would only cost memory.
    const moderator: ProxyModerator = body.messages.length > 1 ? shared : { policy: shared.policy, check: (text) => shared.check(text, { remember: false }) }
    const inputVerdict = moderateInput(c, route.name, moderator, body)

    const maxTokens = Number(body.max_completion_tokens ?? body.max_tokens ?? 0)
    const guardInput = {
      model: `${route.name}/${upstreamModel}`,
      kind: 'llm' as const,
      policy: policy.guard as GuardPolicyInput | undefined,
      tokens: Number.isInteger(maxTokens) && maxTokens > 0 ? maxTokens : 0,
      report: {
        kind: 'llm' as const,
        prompt: messageTexts(body.messages).texts.join('\n'),
        ...(body.logit_bias && typeof body.logit_bias === 'object' ? { logitBias: body.logit_bias as Record<string, number> } : {}),
        logprobs: body.logprobs === true,
      },
    }

    const clientWantsUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true
    body.model = upstreamModel
    if (body.stream === true) body.stream_options = { ...(body.stream_options as object | undefined), include_usage: true }
    const upstreamBody = JSON.stringify(body)
    const { ticket, result: answer } = await guardAround(c, guardInput, {
      call: async (signal) => {
        const answer = await callUpstream(c.env, route, {
          path: '/chat/completions',
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: body.stream === true ? 'text/event-stream' : 'application/json' },
          body: upstreamBody,
          signal,
        })
        if (!answer.response.ok) throw await upstreamError(answer)
        return answer
      },
      discard: async (answer) => answer.response.body?.cancel(),
    })
    let settled = false
    const finish = async (tokens: number) => {
      if (settled) return
      settled = true
      await guardAfter(c, ticket, { tokens })
    }
    if (body.stream === true && answer.response.body) return answerStream(c, route.name, answer, policy, moderator, clientWantsUsage, inputVerdict, finish)
    if (inputVerdict) c.header(MODERATION_HEADER, inputVerdict)
    return answerWhole(c, route.name, answer, policy, moderator, finish)
  })
  return app
}
