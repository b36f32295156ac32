import { env } from 'cloudflare:workers'
import type { Env } from '../../src/edge/env.ts'

// Storage faults on demand: wraps the D1 and R2 bindings so that the Nth
// storage operation of a request (counted across both) throws before it runs,
// as a D1 or R2 outage would. Every operation is logged, so a test can run an
// operation once with no fault to count its steps, then again with a fault at
// each step in turn.

export type FaultPlan = {
  // The 1-based step that throws; null counts steps without failing.
  failAt: number | null
  readonly steps: string[]
  // Whether the fault was reached (false means the operation has fewer steps).
  fired: boolean
}

export function faultPlan(failAt: number | null = null): FaultPlan {
  return { failAt, steps: [], fired: false }
}

export class InjectedFault extends Error {
  constructor(step: number, what: string) {
    super(`injected storage fault at step ${step}: ${what}`)
    this.name = 'InjectedFault'
  }
}

function step(plan: FaultPlan, what: string): void {
  plan.steps.push(what)
  if (plan.steps.length === plan.failAt) {
    plan.fired = true
    throw new InjectedFault(plan.steps.length, what)
  }
}

const REAL_STATEMENT = Symbol('real D1 statement')
type WrappedStatement = D1PreparedStatement & { [REAL_STATEMENT]: D1PreparedStatement }

function wrapStatement(plan: FaultPlan, real: D1PreparedStatement, sql: string): WrappedStatement {
  const what = `d1 ${sql.replace(/\s+/g, ' ').slice(0, 80)}`
  const wrapped = {
    [REAL_STATEMENT]: real,
    bind: (...values: unknown[]) => wrapStatement(plan, real.bind(...values), sql),
    first: async (column?: string) => {
      step(plan, what)
      return column === undefined ? real.first() : real.first(column)
    },
    run: async () => {
      step(plan, what)
      return real.run()
    },
    all: async () => {
      step(plan, what)
      return real.all()
    },
    raw: async (options?: { columnNames?: boolean }) => {
      step(plan, what)
      return options?.columnNames ? real.raw({ columnNames: true }) : real.raw()
    },
  }
  return wrapped as unknown as WrappedStatement
}

export function faultyD1(plan: FaultPlan, db: D1Database): D1Database {
  const unwrap = (statement: D1PreparedStatement) => (statement as Partial<WrappedStatement>)[REAL_STATEMENT] ?? statement
  const wrapped = {
    prepare: (sql: string) => wrapStatement(plan, db.prepare(sql), sql),
    // One batch is one transaction: one step, all or nothing.
    batch: async (statements: D1PreparedStatement[]) => {
      step(plan, `d1 batch of ${statements.length}`)
      return db.batch(statements.map(unwrap))
    },
    exec: async (query: string) => {
      step(plan, `d1 exec ${query.slice(0, 80)}`)
      return db.exec(query)
    },
    dump: () => db.dump(),
    withSession: () => wrapped,
  }
  return wrapped as unknown as D1Database
}

function wrapMultipart(plan: FaultPlan, real: R2MultipartUpload): R2MultipartUpload {
  return {
    key: real.key,
    uploadId: real.uploadId,
    uploadPart: async (...args: Parameters<R2MultipartUpload['uploadPart']>) => {
      step(plan, `r2 uploadPart ${args[0]}`)
      return real.uploadPart(...args)
    },
    complete: async (parts: R2UploadedPart[]) => {
      step(plan, 'r2 complete multipart')
      return real.complete(parts)
    },
    abort: async () => {
      step(plan, 'r2 abort multipart')
      return real.abort()
    },
  }
}

export function faultyR2(plan: FaultPlan, bucket: R2Bucket): R2Bucket {
  const counted = <K extends 'head' | 'get' | 'put' | 'delete' | 'list'>(name: K) =>
    (async (...args: unknown[]) => {
      step(plan, `r2 ${name}`)
      return (bucket[name] as (...a: unknown[]) => unknown)(...args)
    }) as R2Bucket[K]
  return {
    head: counted('head'),
    get: counted('get'),
    put: counted('put'),
    delete: counted('delete'),
    list: counted('list'),
    createMultipartUpload: async (key: string, options?: R2MultipartOptions) => {
      step(plan, 'r2 createMultipartUpload')
      return wrapMultipart(plan, await bucket.createMultipartUpload(key, options))
    },
    // Resuming is local (no storage call); the upload's own calls are counted.
    resumeMultipartUpload: (key: string, uploadId: string) => wrapMultipart(plan, bucket.resumeMultipartUpload(key, uploadId)),
  } as R2Bucket
}

// The test environment with its D1 and R2 bindings behind the plan.
export function faultyEnv(plan: FaultPlan): Env {
  return { ...(env as unknown as Env), DB: faultyD1(plan, env.DB), ARTIFACTS: faultyR2(plan, env.ARTIFACTS) }
}

// Every table's rows (volatile bookkeeping columns left out), to compare the
// database before and after a failed operation.
const VOLATILE_COLUMNS = new Set(['last_used_at'])

export async function snapshotDatabase(): Promise<Record<string, string[]>> {
  const { results: tables } = await env.DB.prepare(
    `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'd1_%' ORDER BY name`,
  ).all<{ name: string }>()
  const snapshot: Record<string, string[]> = {}
  for (const { name } of tables) {
    const { results } = await env.DB.prepare(`SELECT * FROM "${name}"`).all<Record<string, unknown>>()
    snapshot[name] = results
      .map((row) => JSON.stringify(Object.fromEntries(Object.entries(row).filter(([column]) => !VOLATILE_COLUMNS.has(column)))))
      .sort()
  }
  return snapshot
}
