import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

// A model owner's endpoints, for the proxy tests: an OpenAI-style chat
// completions API (streaming, logprobs, usage) and a JSON classifier. The
// requested model picks a behaviour: `echo` answers the last user message,
// `toxic` answers a threat, `flaky` fails once with 503 then answers, `slow`
// answers after two seconds.
export type FakeUpstream = {
  url: string
  requests: { path: string; headers: IncomingMessage['headers']; body: any }[]
  close(): Promise<void>
}

const THREAT = 'I am going to kill you and burn your house down tonight, you will not see it coming.'

function completionText(model: string, body: any): string {
  if (model === 'toxic') return `Sure. ${THREAT}`
  const last = [...(body.messages ?? [])].reverse().find((message: any) => message.role === 'user')
  return `You said: ${typeof last?.content === 'string' ? last.content : 'something'}`
}

function logprobsFor(words: string[], top: number) {
  return {
    content: words.map((word, i) => ({
      token: word,
      logprob: -0.123456789 * (i + 1),
      top_logprobs: Array.from({ length: top }, (_, k) => ({ token: `${word}${k}`, logprob: -1.987654321 * (k + 1) })),
    })),
  }
}

async function readJson(request: IncomingMessage): Promise<any> {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  const text = Buffer.concat(chunks).toString('utf8')
  return text ? JSON.parse(text) : null
}

export async function startFakeUpstream(): Promise<FakeUpstream> {
  const requests: FakeUpstream['requests'] = []
  let flakyCalls = 0
  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const body = await readJson(request)
    requests.push({ path: request.url ?? '', headers: request.headers, body })
    if (request.url === '/classify') {
      response.writeHead(200, { 'content-type': 'application/json' })
      response.end(JSON.stringify({ result: { label: 'b', probs: [0.1, 0.7, 0.2] }, model: 'clf-1' }))
      return
    }
    if (request.url !== '/v1/chat/completions') {
      response.writeHead(404, { 'content-type': 'application/json' })
      response.end(JSON.stringify({ error: { message: 'no such path' } }))
      return
    }
    const model = String(body.model)
    if (model === 'flaky' && flakyCalls++ === 0) {
      response.writeHead(503, { 'content-type': 'application/json' })
      response.end(JSON.stringify({ error: { message: 'overloaded' } }))
      return
    }
    if (model === 'slow') await new Promise((resolve) => setTimeout(resolve, 2000))
    if (model === 'missing') {
      response.writeHead(404, { 'content-type': 'application/json' })
      response.end(JSON.stringify({ error: { message: 'The model `missing` does not exist' } }))
      return
    }
    const text = completionText(model, body)
    const words = text.split(/(?<= )/)
    const usage = { prompt_tokens: 12, completion_tokens: words.length, total_tokens: 12 + words.length }
    const top = typeof body.top_logprobs === 'number' ? body.top_logprobs : 0
    if (body.stream) {
      response.writeHead(200, { 'content-type': 'text/event-stream' })
      const base = { id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 1, model }
      for (const [i, word] of words.entries()) {
        const chunk = { ...base, choices: [{ index: 0, delta: { ...(i === 0 ? { role: 'assistant' } : {}), content: word }, ...(body.logprobs ? { logprobs: logprobsFor([word], top) } : {}), finish_reason: null }] }
        response.write(`data: ${JSON.stringify(chunk)}\n\n`)
        await new Promise((resolve) => setTimeout(resolve, 2))
      }
      response.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`)
      if (body.stream_options?.include_usage) response.write(`data: ${JSON.stringify({ ...base, choices: [], usage })}\n\n`)
      response.end('data: [DONE]\n\n')
      return
    }
    response.writeHead(200, { 'content-type': 'application/json' })
    response.end(
      JSON.stringify({
        id: 'chatcmpl-fake',
        object: 'chat.completion',
        created: 1,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: text }, ...(body.logprobs ? { logprobs: logprobsFor(words, top) } : {}), finish_reason: 'stop' }],
        usage,
      }),
    )
  }
  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error) => {
      response.writeHead(500)
      response.end(String(error))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}
