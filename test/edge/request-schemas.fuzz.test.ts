import { env } from 'cloudflare:workers'
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { fuzzSettings, fuzzTimeout } from '../support/fuzz-settings.ts'
import { mutatedBody, valueOf, type Json, type Schema } from '../support/json-schema-arbitrary.ts'
import { ADMIN_TOKEN, bytesOf, call, createTenant, json, putArtifact, registerModel, type Tenant } from './helpers.ts'

// Every JSON request schema the edge publishes (POST, PUT and PATCH routes of
// /openapi.json), sent bodies generated from the document itself: random
// JSON, valid bodies, and valid bodies broken in one field. With a valid key,
// the edge never answers 5xx; every refusal is a 4xx in the standard
// envelope, and a body refused for its fields names the field it broke.
// FUZZ_RUNS counts requests across all routes.

const settings = fuzzSettings(300, env)
// POST /v1/merges takes a mergekit config: test/edge/merges.fuzz.test.ts.
const ELSEWHERE = new Set(['/v1/merges'])

type Route = { method: string; template: string; path: string; schema: Schema; key: () => string }

let doc: Schema
let routes: Route[] = []
let tenant: Tenant

beforeAll(async () => {
  doc = await json(await call('/openapi.json'))
  tenant = await createTenant('fuzz')
  const model = await registerModel(tenant, 'fuzz-model', 'safetensors')
  expect((await putArtifact(tenant, model, '1', bytesOf(64, 5))).status).toBe(201)
  const upload = await json(await call('/v1/uploads', { key: tenant.adminKey, body: { filename: 'model.safetensors', purpose: 'model' } }))
  const ids: Record<string, string> = { id: model, version: '1', name: 'model.safetensors', client_id: 'client-1', delivery_id: 'dlv_missing', part: '1' }
  for (const [template, item] of Object.entries(doc.paths as Record<string, Record<string, Schema>>)) {
    if (ELSEWHERE.has(template)) continue
    for (const [method, operation] of Object.entries(item)) {
      if (!['post', 'put', 'patch'].includes(method)) continue
      const schema = operation.requestBody?.content?.['application/json']?.schema
      if (!schema) continue
      const path = template.replace(/\{([^}]+)\}/g, (_, name: string) => (template.startsWith('/v1/uploads/') && name === 'id' ? upload.id : (ids[name] ?? 'x_1')))
      routes.push({ method: method.toUpperCase(), template, path, schema, key: () => (template.startsWith('/admin/') ? ADMIN_TOKEN : tenant.adminKey) })
    }
  }
})

type Answer = { status: number; body: any }

async function send(route: Route, raw: string): Promise<Answer> {
  const response = await call(route.path, { method: route.method, key: route.key(), raw, headers: { 'content-type': 'application/json' } })
  const text = await response.text()
  let body: any = null
  try {
    body = JSON.parse(text)
  } catch {
    // Checked below: every refusal must be JSON.
  }
  return { status: response.status, body }
}

function expectNoFault(route: Route, answer: Answer, what: string): void {
  const where = `${route.method} ${route.template} with ${what}`
  if (answer.status >= 500) throw new Error(`${where}: ${answer.status} ${JSON.stringify(answer.body)}`)
  if (answer.status >= 400) {
    expect(answer.body?.error, where).toMatchObject({ message: expect.any(String), type: expect.any(String) })
    expect(answer.body.error.message.length, where).toBeGreaterThan(3)
  }
}

// Whether a refusal names the field at `path` (or a field that holds it).
function namesField(error: { param: string | null; message: string }, path: string): boolean {
  const param = error.param ?? ''
  if (param && (param === path || path.startsWith(`${param}.`) || param.startsWith(`${path}.`))) return true
  const last = path.split('.').filter((part) => !/^\d+$/.test(part)).at(-1) ?? ''
  return last !== '' && error.message.includes(last)
}

const routeIndex = fc.nat()
const pick = (index: number) => routes[index % routes.length]!

describe('request schema fuzzing', () => {
  it('finds the JSON routes of the OpenAPI document', () => {
    expect(routes.length).toBeGreaterThan(15)
  })

  // Found by this fuzzer: an empty query id passed the unknown-id check
  // (a falsy string) and the lookup after it threw, a 500.
  it('refuses an ownership answer with an empty query id as unknown', async () => {
    const route = routes.find((r) => r.template === '/v1/models/{id}/ownership/verify')!
    const answer = await send(route, JSON.stringify({ answers: [{ query_id: '', label: 0 }] }))
    expect(answer.status).toBe(400)
    expect(answer.body.error).toMatchObject({ code: 'unknown_query', param: 'answers' })
  })

  it(`answers random JSON, valid bodies and single-field mutations on every route with a 2xx or an enveloped 4xx (${settings.numRuns} requests)`, async () => {
    const input = routeIndex.chain((index) => {
      const route = pick(index)
      return fc.oneof(
        fc.jsonValue({ maxDepth: 4 }).map((value) => ({ route, kind: 'random JSON', raw: JSON.stringify(value) ?? 'null', path: null as string | null, mustRefuse: false })),
        fc.string({ maxLength: 20 }).map((text) => ({ route, kind: `text ${JSON.stringify(text)}`, raw: text, path: null as string | null, mustRefuse: false })),
        valueOf(route.schema, doc).map((value: Json) => ({ route, kind: 'a valid body', raw: JSON.stringify(value), path: null as string | null, mustRefuse: false })),
        { weight: 3, arbitrary: mutatedBody(route.schema, doc).map((mutated) => ({ route, kind: mutated.what, raw: JSON.stringify(mutated.body), path: mutated.path, mustRefuse: mutated.mustRefuse, base: JSON.stringify(mutated.base) })) },
      )
    })
    await fc.assert(
      fc.asyncProperty(input, async ({ route, kind, raw, path, mustRefuse, base }: { route: Route; kind: string; raw: string; path: string | null; mustRefuse: boolean; base?: string }) => {
        // The unbroken body first: rules in code that the document cannot
        // state (an event name's form, say) may refuse it already, and then
        // the broken field need not be the one a refusal names.
        let baseRefused = false
        if (base !== undefined && mustRefuse) {
          const before = await send(route, base)
          expectNoFault(route, before, `the valid body ${base.slice(0, 200)}`)
          baseRefused = before.status === 400
        }
        const answer = await send(route, raw)
        expectNoFault(route, answer, kind)
        const where = `${route.method} ${route.template} with ${kind}: ${answer.status} ${JSON.stringify(answer.body)?.slice(0, 300)}`
        if (mustRefuse && answer.status < 400) throw new Error(`accepted ${where}`)
        const validation = answer.status === 400 && ['invalid_value', 'unknown_field'].includes(answer.body.error.code)
        if (path && mustRefuse && validation && !baseRefused && !namesField(answer.body.error, path)) throw new Error(`the refusal does not name ${path}: ${where}`)
      }),
      settings,
    )
  }, fuzzTimeout(settings, 60))
})
