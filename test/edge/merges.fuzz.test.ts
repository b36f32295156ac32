import { env } from 'cloudflare:workers'
import fc from 'fast-check'
import { stringify } from 'yaml'
import { beforeAll, describe, expect, it } from 'vitest'
import { fuzzSettings, fuzzTimeout } from '../support/fuzz-settings.ts'
import { ALIAS_BOMB, brokenConfig, validConfig } from '../support/merge-config-arbitraries.ts'
import { bytesOf, call, createTenant, json, putArtifact, registerModel, type Tenant } from './helpers.ts'

// POST /v1/merges with generated mergekit configs over registered models:
// valid ones become queued jobs (202), ones broken in a single field are a
// 400 whose `param` names the field, mangled YAML is a 4xx or a 202. Never a
// 5xx. The parser itself gets the full count in test/shared/merge-config.fuzz.test.ts;
// through workerd, `npm run fuzz` runs a twentieth of FUZZ_RUNS per property.

const full = fuzzSettings(40, env)
const settings = { ...full, numRuns: Math.max(40, Math.ceil(full.numRuns / 20)) }

let tenant: Tenant
let refs: string[] = []

beforeAll(async () => {
  tenant = await createTenant('merge-fuzz')
  for (const [i, name] of ['base', 'a', 'b', 'c', 'd'].entries()) {
    const id = await registerModel(tenant, name, 'safetensors')
    expect((await putArtifact(tenant, id, '1', bytesOf(64, i + 1))).status).toBe(201)
    refs.push(i % 2 === 0 ? id : `${id}/1`)
  }
})

async function post(body: string, type: string): Promise<{ status: number; body: any }> {
  const response = await call('/v1/merges', { key: tenant.adminKey, raw: body, headers: { 'content-type': type } })
  return { status: response.status, body: await response.json().catch(() => null) }
}

const names = (param: string, path: string) => param === path || path.startsWith(`${param}.`) || path.startsWith(`${param}[`)

describe('POST /v1/merges fuzzing', () => {
  it(`queues every valid config, as YAML or JSON (${settings.numRuns} cases)`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.constant(null).chain(() => validConfig(refs)), fc.boolean(), async (config, asYaml) => {
        const answer = asYaml ? await post(stringify(config), 'application/yaml') : await post(JSON.stringify(config), 'application/json')
        if (answer.status !== 202) throw new Error(`${answer.status} ${JSON.stringify(answer.body)} for ${JSON.stringify(config)}`)
        expect(answer.body).toMatchObject({ object: 'job', type: 'merge', status: 'queued' })
      }),
      settings,
    )
  }, fuzzTimeout(settings, 100))

  it(`refuses a config broken in one field with a 400 naming it (${settings.numRuns} cases)`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.constant(null).chain(() => brokenConfig(refs)), fc.boolean(), async (broken, asYaml) => {
        const answer = asYaml ? await post(stringify(broken.config), 'application/yaml') : await post(JSON.stringify(broken.config), 'application/json')
        const where = `${broken.what}: ${answer.status} ${JSON.stringify(answer.body)}`
        // A JSON body that is not an object is refused by the route's schema.
        if (answer.status !== 400) throw new Error(where)
        if (answer.body.error.code === 'invalid_merge_config' && !names(answer.body.error.param, broken.path)) throw new Error(`the refusal does not name ${broken.path}: ${where}`)
        expect(answer.body.error.message.length).toBeGreaterThan(5)
      }),
      settings,
    )
  }, fuzzTimeout(settings, 100))

  it(`answers mangled YAML, alias bombs and deep nesting with a 4xx or a 202, never a 5xx (${settings.numRuns} cases)`, async () => {
    const mangle = fc.oneof(
      fc.tuple(fc.nat(), fc.string({ maxLength: 6 })).map(([at, text]) => (yaml: string) => yaml.slice(0, at % (yaml.length + 1)) + text + yaml.slice(at % (yaml.length + 1))),
      fc.tuple(fc.nat(), fc.nat({ max: 20 })).map(([at, length]) => (yaml: string) => yaml.slice(0, at % (yaml.length + 1)) + yaml.slice((at % (yaml.length + 1)) + length)),
      fc.constantFrom('&x ', '*x', '<<: *x\n', '!!binary ', '!foo ', '---\n', '.nan', '\u0000').chain((token) => fc.nat().map((at) => (yaml: string) => yaml.slice(0, at % (yaml.length + 1)) + token + yaml.slice(at % (yaml.length + 1)))),
      fc.constant((yaml: string) => `${ALIAS_BOMB}\n${yaml}`),
      fc.integer({ min: 65, max: 600 }).map((depth) => (yaml: string) => `${yaml}\nx: ${'['.repeat(depth)}${']'.repeat(depth)}\n`),
    )
    await fc.assert(
      fc.asyncProperty(fc.constant(null).chain(() => validConfig(refs)), fc.array(mangle, { minLength: 1, maxLength: 3 }), async (config, edits) => {
        const answer = await post(edits.reduce((yaml, edit) => edit(yaml), stringify(config)), 'application/yaml')
        if (answer.status >= 500) throw new Error(`${answer.status} ${JSON.stringify(answer.body)}`)
        // A mangled model reference is a 404, the rest 400s or 415s: any 4xx in the envelope.
        if (answer.status !== 202) {
          expect(answer.status).toBeGreaterThanOrEqual(400)
          expect(answer.body.error).toMatchObject({ message: expect.any(String), type: expect.any(String) })
        }
      }),
      settings,
    )
  }, fuzzTimeout(settings, 100))
})
