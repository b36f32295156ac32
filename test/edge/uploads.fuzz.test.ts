import { env } from 'cloudflare:workers'
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { MIN_PART_BYTES } from '../../src/edge/artifacts/multipart-upload.ts'
import { errorTypeFor } from '../../src/edge/errors.ts'
import { fuzzSettings, fuzzTimeout } from '../support/fuzz-settings.ts'
import { bytesOf, call, createTenant, json, sha256Hex, type Tenant } from './helpers.ts'

// Model-based fuzzing of the uploads API: random sequences of create, put part
// (the right one, repeated, out of order, too big, too small, empty, a bad part
// number), complete (right, wrong and malformed SHA-256), cancel and status,
// run against workerd and against a model of what each upload should be. The
// server's answer always matches the model, every refusal is a 4xx in the
// envelope with a message, nothing is a 5xx, and a completed upload's object
// in R2 has exactly the bytes sent and their SHA-256.
//
// R2 wants every part but the last to be at least 5 MiB, so most uploads are
// small (one part) and a few are 5 MiB plus a tail (two parts).

// FUZZ_RUNS counts commands: a run is a sequence of up to MAX_COMMANDS.
const settings = fuzzSettings(400, env)
const MAX_COMMANDS = 24
// fc.commands averages about 8.6 commands a sequence here (measured).
const MEAN_COMMANDS = 8
const runs = { numRuns: Math.ceil(settings.numRuns / MEAN_COMMANDS), seed: settings.seed }

type ModelUpload = {
  declared: number
  status: 'pending' | 'completed' | 'cancelled' | 'failed'
  received: number
  nextPart: number
  partSize: number | null
  parts: Uint8Array[]
}
type Model = { uploads: ModelUpload[] }
type Real = { ids: string[]; commands: number }

let tenant: Tenant
let totalCommands = 0
const GHOST_ID = 'upload_00000000000000000000000000'

type Expected = { status: number; code?: string }

// How often each command got each answer: the run prints it, to show that
// every path (a completed two-part upload included) was taken.
const outcomes = new Map<string, number>()

async function expectAnswer(res: Response, expected: Expected, what: string): Promise<any> {
  const body = await json(res)
  const outcome = `${what.slice(0, what.indexOf('('))} ${res.status}${body?.error?.code ? ` ${body.error.code}` : ''}`
  outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
  expect(res.status, `${what}: ${JSON.stringify(body)}`).toBe(expected.status)
  if (res.status >= 400) {
    expect(body.error.message, what).toMatch(/\S/)
    expect(body.error.type, what).toBe(errorTypeFor(res.status))
    if (expected.code) expect(body.error.code, what).toBe(expected.code)
  }
  return body
}

function expectView(body: any, upload: ModelUpload, what: string): void {
  expect(
    { status: body.status, bytes: body.bytes, received_bytes: body.received_bytes, next_part: body.next_part, part_size: body.part_size },
    what,
  ).toEqual({ status: upload.status, bytes: upload.declared, received_bytes: upload.received, next_part: upload.nextPart, part_size: upload.partSize })
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

// A part's bytes, from its seed. Full-sized parts start from one cached block
// (generating 5 MiB byte by byte for every part would dominate the run).
let block: Uint8Array<ArrayBuffer> | undefined
function partBytes(length: number, seed: number): Uint8Array<ArrayBuffer> {
  if (length < 64 * 1024) return bytesOf(length, seed)
  block ??= bytesOf(MIN_PART_BYTES + 64 * 1024, 1)
  const bytes = block.slice(seed % 4096, (seed % 4096) + length)
  bytes.set(bytesOf(16, seed))
  return bytes
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

// A pick names one of this sequence's uploads; a negative pick names an id
// that does not exist.
const target = (model: Model, real: Real, pick: number) =>
  pick < 0 || model.uploads.length === 0
    ? { upload: undefined, id: GHOST_ID }
    : { upload: model.uploads[model.uploads.length - 1 - (pick % model.uploads.length)], id: real.ids[real.ids.length - 1 - (pick % real.ids.length)]! }
const hasUpload = (model: Model) => model.uploads.length > 0

class CreateUpload implements fc.AsyncCommand<Model, Real> {
  readonly declared: number
  constructor(declared: number) {
    this.declared = declared
  }
  check = () => true
  async run(model: Model, real: Real) {
    real.commands++
    const res = await call('/v1/uploads', { key: tenant.adminKey, body: { filename: 'weights.safetensors', bytes: this.declared, purpose: 'model' } })
    const body = await expectAnswer(res, { status: 201 }, this.toString())
    const upload: ModelUpload = { declared: this.declared, status: 'pending', received: 0, nextPart: 1, partSize: null, parts: [] }
    expectView(body, upload, this.toString())
    model.uploads.push(upload)
    real.ids.push(body.id)
  }
  toString = () => `create(${this.declared})`
}

// A create the API must refuse: nothing is created.
class CreateInvalid implements fc.AsyncCommand<Model, Real> {
  readonly body: Record<string, unknown>
  constructor(body: Record<string, unknown>) {
    this.body = body
  }
  check = () => true
  async run(_model: Model, real: Real) {
    real.commands++
    const res = await call('/v1/uploads', { key: tenant.adminKey, body: this.body })
    await expectAnswer(res, { status: 400 }, this.toString())
  }
  toString = () => `createInvalid(${JSON.stringify(this.body)})`
}

type PartNumberChoice = 'next' | 'previous' | 'skip' | 'first'
// right: what the next part should be (the first part's size, or the rest);
// rest: all that remains in one part; min: 5 MiB, or less where that is all
// that remains; over: more than remains; short: less than remains.
type SizeChoice = 'right' | 'rest' | 'min' | 'over' | 'short' | 'empty'

class PutPart implements fc.AsyncCommand<Model, Real> {
  readonly pick: number
  readonly number: PartNumberChoice
  readonly size: SizeChoice
  readonly delta: number
  readonly seed: number
  constructor(pick: number, number: PartNumberChoice, size: SizeChoice, delta: number, seed: number) {
    this.pick = pick
    this.number = number
    this.size = size
    this.delta = delta
    this.seed = seed
  }
  check = (model: Model) => this.pick < 0 || hasUpload(model)

  private partNumber(upload: ModelUpload | undefined): number {
    const next = upload?.nextPart ?? 1
    if (this.number === 'next') return next
    if (this.number === 'previous') return Math.max(1, next - 1)
    if (this.number === 'skip') return next + 1 + (this.delta % 3)
    return 1
  }

  private length(upload: ModelUpload | undefined): number {
    const rest = upload ? upload.declared - upload.received : 10
    if (this.size === 'right') return Math.min(rest, upload?.partSize ?? (rest > MIN_PART_BYTES ? MIN_PART_BYTES : rest))
    if (this.size === 'rest') return rest
    // A full-sized first part, only where the upload is big enough to take one.
    if (this.size === 'min') return rest > MIN_PART_BYTES ? MIN_PART_BYTES : Math.max(1, rest - 1 - (this.delta % Math.max(1, rest - 1)))
    if (this.size === 'over') return rest + 1 + (this.delta % 64)
    if (this.size === 'short') return Math.max(1, rest - 1 - (this.delta % 64))
    return 0
  }

  // What the server must answer, in the order it checks.
  private expected(upload: ModelUpload | undefined, part: number, length: number): Expected {
    if (!upload) return { status: 404, code: 'upload_not_found' }
    if (upload.status !== 'pending') return { status: 409, code: 'upload_not_pending' }
    if (part !== upload.nextPart) return { status: 409, code: 'part_out_of_order' }
    if (length === 0) return { status: 400 }
    const rest = upload.declared - upload.received
    if (length > rest) return { status: 400, code: 'invalid_part_size' }
    if (length === rest) return { status: 200 }
    const expected = upload.partSize ?? length
    if (expected < MIN_PART_BYTES || length !== expected) return { status: 400, code: 'invalid_part_size' }
    return { status: 200 }
  }

  async run(model: Model, real: Real) {
    real.commands++
    const { upload, id } = target(model, real, this.pick)
    const part = this.partNumber(upload)
    const length = this.length(upload)
    const bytes = partBytes(length, this.seed)
    const expected = this.expected(upload, part, length)
    const res = await call(`/v1/uploads/${id}/parts/${part}`, { method: 'PUT', key: tenant.adminKey, raw: bytes })
    const what = `${this.toString()} → part ${part} of ${length} bytes`
    const body = await expectAnswer(res, expected, what)
    if (!upload || res.status !== 200) return
    upload.parts.push(bytes)
    upload.received += length
    upload.nextPart++
    upload.partSize ??= length
    expectView(body, upload, what)
  }
  toString = () => `put(#${this.pick}, ${this.number}, ${this.size}, ${this.delta})`
}

class PutBadPartNumber implements fc.AsyncCommand<Model, Real> {
  readonly pick: number
  readonly part: string
  constructor(pick: number, part: string) {
    this.pick = pick
    this.part = part
  }
  check = (model: Model) => this.pick < 0 || hasUpload(model)
  async run(model: Model, real: Real) {
    real.commands++
    const { id } = target(model, real, this.pick)
    const res = await call(`/v1/uploads/${id}/parts/${encodeURIComponent(this.part)}`, { method: 'PUT', key: tenant.adminKey, raw: bytesOf(8) })
    await expectAnswer(res, { status: 400 }, this.toString())
  }
  toString = () => `putBadNumber(#${this.pick}, ${JSON.stringify(this.part)})`
}

type ShaChoice = 'right' | 'wrong' | 'malformed'

class Complete implements fc.AsyncCommand<Model, Real> {
  readonly pick: number
  readonly sha: ShaChoice
  constructor(pick: number, sha: ShaChoice) {
    this.pick = pick
    this.sha = sha
  }
  check = (model: Model) => this.pick < 0 || hasUpload(model)
  async run(model: Model, real: Real) {
    real.commands++
    const { upload, id } = target(model, real, this.pick)
    const whole = upload ? concat(upload.parts) : new Uint8Array(0)
    const right = await sha256Hex(whole)
    const sha256 = this.sha === 'right' ? right : this.sha === 'wrong' ? (right[0] === '0' ? '1' : '0') + right.slice(1) : right.toUpperCase().slice(1)
    const expected: Expected =
      this.sha === 'malformed'
        ? { status: 400 }
        : !upload
          ? { status: 404, code: 'upload_not_found' }
          : upload.status !== 'pending'
            ? { status: 409, code: 'upload_not_pending' }
            : upload.received !== upload.declared
              ? { status: 409, code: 'upload_incomplete' }
              : this.sha === 'wrong'
                ? { status: 422, code: 'sha256_mismatch' }
                : { status: 200 }
    const res = await call(`/v1/uploads/${id}/complete`, { key: tenant.adminKey, body: { sha256 } })
    const body = await expectAnswer(res, expected, this.toString())
    if (!upload || this.sha === 'malformed') return
    if (res.status === 422) upload.status = 'failed'
    if (res.status !== 200) return
    upload.status = 'completed'
    expectView(body, upload, this.toString())
    const multipart = upload.parts.length > 1 ? 'multipart' : 'single'
    outcomes.set(`completed ${multipart}`, (outcomes.get(`completed ${multipart}`) ?? 0) + 1)
    expect(body.sha256).toBe(right)
    // The assembled object holds exactly the bytes sent.
    const row = await env.DB.prepare('SELECT artifact_key FROM uploads WHERE id = ?1').bind(id).first<{ artifact_key: string }>()
    const object = await env.ARTIFACTS.get(row!.artifact_key)
    const stored = new Uint8Array(await object!.arrayBuffer())
    expect(stored.length).toBe(upload.declared)
    expect(await sha256Hex(stored)).toBe(right)
    expect(sameBytes(stored, whole)).toBe(true)
  }
  toString = () => `complete(#${this.pick}, ${this.sha})`
}

class Cancel implements fc.AsyncCommand<Model, Real> {
  readonly pick: number
  constructor(pick: number) {
    this.pick = pick
  }
  check = (model: Model) => this.pick < 0 || hasUpload(model)
  async run(model: Model, real: Real) {
    real.commands++
    const { upload, id } = target(model, real, this.pick)
    const expected: Expected = !upload ? { status: 404 } : upload.status !== 'pending' ? { status: 409, code: 'upload_not_pending' } : { status: 200 }
    const body = await expectAnswer(await call(`/v1/uploads/${id}/cancel`, { method: 'POST', key: tenant.adminKey }), expected, this.toString())
    if (!upload || expected.status !== 200) return
    upload.status = 'cancelled'
    expectView(body, upload, this.toString())
  }
  toString = () => `cancel(#${this.pick})`
}

class Status implements fc.AsyncCommand<Model, Real> {
  readonly pick: number
  constructor(pick: number) {
    this.pick = pick
  }
  check = (model: Model) => this.pick < 0 || hasUpload(model)
  async run(model: Model, real: Real) {
    real.commands++
    const { upload, id } = target(model, real, this.pick)
    const body = await expectAnswer(await call(`/v1/uploads/${id}`, { key: tenant.adminKey }), { status: upload ? 200 : 404 }, this.toString())
    if (!upload) return
    expectView(body, upload, this.toString())
    expect(body.sha256).toBe(upload.status === 'completed' ? await sha256Hex(concat(upload.parts)) : null)
  }
  toString = () => `status(#${this.pick})`
}

// Mostly the newest upload of this sequence, else an older one; now and then
// one that does not exist.
const pick = fc.oneof({ weight: 10, arbitrary: fc.constant(0) }, { weight: 5, arbitrary: fc.nat(7) }, { weight: 1, arbitrary: fc.constant(-1) })
// Mostly small one-part uploads; a few of 5 MiB plus a tail, whose first part
// must be exactly 5 MiB.
const declared = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 4096 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 2048 }).map((tail) => MIN_PART_BYTES + tail) },
)
const invalidCreate = fc.oneof(
  fc.constantFrom(0, -1, 1.5, 64 * 1024 ** 3 + 1, '12').map((bytes) => ({ filename: 'w.bin', bytes })),
  fc.constantFrom('', '../w.bin', 'a/b', 'x'.repeat(201), 'sp ace').map((filename) => ({ filename, bytes: 10 })),
  fc.constant({ filename: 'w.bin', bytes: 10, purpose: 'other' }),
  fc.constant({ filename: 'w.bin' }),
  fc.constant({ filename: 'w.bin', bytes: 10, extra: true }),
)
const putPart = fc
  .tuple(
    pick,
    fc.constantFrom<PartNumberChoice>('next', 'next', 'next', 'next', 'next', 'next', 'previous', 'skip', 'first'),
    fc.constantFrom<SizeChoice>('right', 'right', 'right', 'right', 'rest', 'min', 'over', 'short', 'empty'),
    fc.nat(1000),
    fc.nat(1000),
  )
  .map(([p, number, size, delta, seed]) => new PutPart(p, number, size, delta, seed))
const complete = fc.tuple(pick, fc.constantFrom<ShaChoice>('right', 'right', 'right', 'wrong', 'malformed')).map(([p, sha]) => new Complete(p, sha))
// fc.commands picks among these uniformly: the common moves are listed twice.
const commands = [
  declared.map((bytes) => new CreateUpload(bytes)),
  declared.map((bytes) => new CreateUpload(bytes)),
  invalidCreate.map((body) => new CreateInvalid(body)),
  putPart,
  putPart,
  putPart,
  putPart,
  fc.tuple(pick, fc.constantFrom('0', '10001', '-1', '1.5', 'one', '1e3', '0x10', ' 1', '+1')).map(([p, part]) => new PutBadPartNumber(p, part)),
  complete,
  complete,
  pick.map((p) => new Cancel(p)),
  pick.map((p) => new Status(p)),
]

describe('uploads, model-based', () => {
  beforeAll(async () => {
    tenant = await createTenant('uploads-fuzz')
  })

  it(
    'every sequence of upload commands leaves the server as the model says',
    { timeout: fuzzTimeout(settings, 60) },
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.commands(commands, { maxCommands: MAX_COMMANDS, size: '+1' }), async (sequence) => {
          const real: Real = { ids: [], commands: 0 }
          await fc.asyncModelRun(() => ({ model: { uploads: [] }, real }), sequence)
          totalCommands += real.commands
        }),
        runs,
      )
      // FUZZ_RUNS is a count of commands; the runs must have reached it.
      const tally = [...outcomes].sort().map(([outcome, count]) => `${outcome}: ${count}`)
      console.log(`uploads fuzz: ${runs.numRuns} sequences, ${totalCommands} commands, seed ${runs.seed}\n  ${tally.join('\n  ')}`)
      expect(totalCommands).toBeGreaterThanOrEqual(settings.numRuns)
    },
  )
})
