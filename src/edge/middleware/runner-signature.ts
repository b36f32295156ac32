import { lt } from 'drizzle-orm'
import type { MiddlewareHandler } from 'hono'
import { sha256Hex } from '../../shared/encoding.ts'
import { SIGNATURE_WINDOW_SECONDS, verifyRunnerSignature } from '../../shared/runner-signature.ts'
import { database, type Database } from '../db/client.ts'
import { runnerSignatures } from '../db/schema.ts'
import type { AppEnv } from '../env.ts'
import { ApiError } from '../errors.ts'

function refused(reason: string): ApiError {
  return new ApiError(401, `Runner signature refused: ${reason}`, { code: 'invalid_signature' })
}

// Verifies the HMAC on a runner → edge request and records its signature, so
// the same request replayed inside the window is refused. A body is checked
// against its signed hash here, except for PUT, whose streamed body (an
// artifact part) the route hashes while it reads it.
export function verifyRunnerRequest(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const secret = c.env.MOAT_RUNNER_SECRET
    if (!secret) throw new ApiError(503, 'MOAT_RUNNER_SECRET is not configured', { code: 'runner_channel_disabled' })
    const url = new URL(c.req.url)
    const check = await verifyRunnerSignature({
      secret,
      method: c.req.method,
      path: url.pathname + url.search,
      headers: c.req.raw.headers,
    })
    if (!check.ok) throw refused(check.reason)
    if (c.req.method !== 'PUT') {
      const body = new Uint8Array(await c.req.arrayBuffer())
      if ((await sha256Hex(body)) !== check.bodySha256) throw refused('body does not match its signed hash')
    }
    const db = database(c.env)
    const fresh = await db
      .insert(runnerSignatures)
      .values({ signature: check.signature, seenAt: Date.now() })
      .onConflictDoNothing()
      .returning({ signature: runnerSignatures.signature })
    if (fresh.length === 0) throw refused('replayed request')
    await next()
  }
}

export async function purgeRunnerSignatures(db: Database, now = Date.now()): Promise<void> {
  // Twice the window: a signature older than that is refused by its timestamp anyway.
  await db.delete(runnerSignatures).where(lt(runnerSignatures.seenAt, now - 2 * SIGNATURE_WINDOW_SECONDS * 1000)).run()
}
