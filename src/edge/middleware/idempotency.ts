import { and, eq } from 'drizzle-orm'
import type { MiddlewareHandler } from 'hono'
import { sha256Hex } from '../../shared/encoding.ts'
import { database } from '../db/client.ts'
import { idempotencyRecords } from '../db/schema.ts'
import type { AppEnv } from '../env.ts'
import { ApiError } from '../errors.ts'

export const IDEMPOTENCY_HEADER = 'idempotency-key'
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000
const REPLAYED_HEADERS = ['content-type', 'location'] as const

// `Idempotency-Key` on a creating POST: the first request with a key runs and
// its response is stored; a replay with the same body gets that response back;
// a replay with another body is refused (422); one that arrives while the first
// is still running gets 409. The record is claimed with an insert, so two
// concurrent requests with one key can never both run. Keys are scoped to the
// API key (or to the operator for admin endpoints). Only successes are stored:
// after a 4xx or a fault the client may fix the request and retry the key.
export function idempotency(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const key = c.req.header(IDEMPOTENCY_HEADER)
    if (key === undefined) return next()
    if (key.length === 0 || key.length > 255) {
      throw new ApiError(400, 'Idempotency-Key must be 1 to 255 characters', { code: 'invalid_idempotency_key', param: 'Idempotency-Key' })
    }
    const auth = c.get('auth')
    const scope = auth ? `key:${auth.keyId}` : 'operator'
    const body = await c.req.text()
    const fingerprint = await sha256Hex(`${c.req.method}\n${new URL(c.req.url).pathname}\n${body}`)
    const db = database(c.env)
    const claimed = await db
      .insert(idempotencyRecords)
      .values({ scope, key, fingerprint, state: 'pending', createdAt: Date.now() })
      .onConflictDoNothing()
      .returning({ key: idempotencyRecords.key })
    if (claimed.length === 0) {
      const [record] = await db
        .select()
        .from(idempotencyRecords)
        .where(and(eq(idempotencyRecords.scope, scope), eq(idempotencyRecords.key, key)))
      if (!record) throw new ApiError(409, 'Idempotency-Key is being reset; retry', { code: 'idempotency_conflict' })
      if (record.fingerprint !== fingerprint) {
        throw new ApiError(422, 'Idempotency-Key was already used with a different request', {
          code: 'idempotency_key_reused',
          param: 'Idempotency-Key',
        })
      }
      if (record.state !== 'complete' || record.status === null) {
        throw new ApiError(409, 'A request with this Idempotency-Key is still in progress', { code: 'idempotency_in_progress' })
      }
      c.set('idempotentReplay', true)
      const headers = new Headers(record.headers ?? {})
      headers.set('idempotent-replayed', 'true')
      return new Response(record.body, { status: record.status, headers })
    }

    const release = () =>
      db.delete(idempotencyRecords).where(and(eq(idempotencyRecords.scope, scope), eq(idempotencyRecords.key, key))).run()
    // Hono turns a thrown error into the error response before next() returns.
    await next()
    if (c.res.status >= 300) {
      await release()
      return
    }
    const headers: Record<string, string> = {}
    for (const name of REPLAYED_HEADERS) {
      const value = c.res.headers.get(name)
      if (value !== null) headers[name] = value
    }
    // The work is done: if its response cannot be stored, it still goes out,
    // and the claim is released so that the key is not stuck in progress.
    await db
      .update(idempotencyRecords)
      .set({ state: 'complete', status: c.res.status, headers, body: await c.res.clone().text() })
      .where(and(eq(idempotencyRecords.scope, scope), eq(idempotencyRecords.key, key)))
      .run()
      .catch(async (error: unknown) => {
        console.error(JSON.stringify({ level: 'error', request_id: c.get('requestId'), message: `storing an idempotent response failed: ${String(error)}` }))
        await release().catch(() => undefined)
      })
  }
}
