import { eq } from 'drizzle-orm'
import type { MiddlewareHandler } from 'hono'
import { constantTimeEqual } from '../../shared/constant-time.ts'
import { sha256Hex } from '../../shared/encoding.ts'
import { API_KEY_PATTERN } from '../auth/api-key.ts'
import { hasScope, type Scope } from '../auth/scopes.ts'
import { database, type Database } from '../db/client.ts'
import { apiKeys, tenants } from '../db/schema.ts'
import type { AppEnv, AuthContext } from '../env.ts'
import { ApiError } from '../errors.ts'

const LAST_USED_RESOLUTION_MS = 60_000

function unauthorized(message: string): ApiError {
  return new ApiError(401, message, { code: 'invalid_api_key', headers: { 'www-authenticate': 'Bearer' } })
}

export function bearerToken(header: string | undefined): string | null {
  if (!header) return null
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header)
  return match?.[1] ?? null
}

export type KeyLookup =
  | { ok: true; key: typeof apiKeys.$inferSelect; limits: AuthContext['limits'] }
  | { ok: false; reason: string }

// Finds the live key behind a secret: the key's SHA-256 finds its row; the
// stored hash is compared in constant time; revoked keys are refused. Shared by
// bearer auth and the dashboard's sign-in.
export async function findActiveKey(db: Database, token: string): Promise<KeyLookup> {
  if (!API_KEY_PATTERN.test(token)) return { ok: false, reason: 'Malformed API key' }
  const hash = await sha256Hex(token)
  const [found] = await db
    .select({ key: apiKeys, limits: tenants.usageLimits })
    .from(apiKeys)
    .innerJoin(tenants, eq(tenants.id, apiKeys.tenantId))
    .where(eq(apiKeys.keyHash, hash))
    .limit(1)
  const row = found?.key
  if (!found || !row || !constantTimeEqual(row.keyHash, hash)) return { ok: false, reason: 'Invalid API key' }
  if (row.revokedAt !== null) return { ok: false, reason: 'This API key has been revoked' }
  return { ok: true, key: row, limits: found.limits }
}

// Bearer auth with an API key. Scopes are checked per route with requireScope.
export function requireKey(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const token = bearerToken(c.req.header('authorization'))
    if (!token) throw unauthorized('Missing API key: send Authorization: Bearer <key>')
    const db = database(c.env)
    const found = await findActiveKey(db, token)
    if (!found.ok) throw unauthorized(found.reason)
    const row = found.key
    c.set('auth', { tenantId: row.tenantId, keyId: row.id, scopes: row.scopes, limits: found.limits })
    const now = Date.now()
    if (row.lastUsedAt === null || now - row.lastUsedAt > LAST_USED_RESOLUTION_MS) {
      // Best effort: a failed bookkeeping write must not fail the request or
      // surface as an unhandled rejection.
      c.executionCtx.waitUntil(
        db
          .update(apiKeys)
          .set({ lastUsedAt: now })
          .where(eq(apiKeys.id, row.id))
          .run()
          .catch((error: unknown) => console.error(JSON.stringify({ level: 'error', message: `recording a key's last use failed: ${String(error)}` }))),
      )
    }
    await next()
  }
}

export function requireScope(scope: Scope): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (!hasScope(c.get('auth').scopes, scope)) {
      throw new ApiError(403, `This key lacks the '${scope}' scope`, { code: 'insufficient_scope' })
    }
    await next()
  }
}

// Operator endpoints (creating tenants) take the MOAT_ADMIN_TOKEN secret.
export function requireAdminToken(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const expected = c.env.MOAT_ADMIN_TOKEN
    if (!expected) throw new ApiError(503, 'MOAT_ADMIN_TOKEN is not configured', { code: 'admin_disabled' })
    const token = bearerToken(c.req.header('authorization'))
    if (!token || !constantTimeEqual(token, expected)) throw unauthorized('Invalid admin token')
    await next()
  }
}
