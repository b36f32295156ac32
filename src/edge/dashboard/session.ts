import { and, eq, gt, isNull, lt } from 'drizzle-orm'
import type { Context } from 'hono'
import { deleteCookie, getCookie, setCookie } from 'hono/cookie'
import { sha256Hex } from '../../shared/encoding.ts'
import { randomString } from '../../shared/ids.ts'
import type { Database } from '../db/client.ts'
import { apiKeys, dashboardSessions } from '../db/schema.ts'

export const SESSION_COOKIE = 'moat_session'
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000
const COOKIE_PATH = '/dashboard'
const TOKEN_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

export type DashboardSession = typeof dashboardSessions.$inferSelect

export function newToken(): string {
  return randomString(40, TOKEN_ALPHABET)
}

// Browsers drop Secure cookies on plain http, which is how the dashboard is
// reached on loopback during development; everywhere else the cookie is Secure.
function isLoopback(url: string): boolean {
  const host = new URL(url).hostname
  return host === 'localhost' || host === '127.0.0.1' || host === '[::1]'
}

export function cookieOptions(c: Context, maxAgeSeconds: number) {
  return { path: COOKIE_PATH, httpOnly: true, sameSite: 'Strict', secure: !isLoopback(c.req.url), maxAge: maxAgeSeconds } as const
}

// The cookie holds the session's token; the table holds only its SHA-256 (the
// row's id), like API keys, so that a read of the database hands out no
// session.
export async function startSession(c: Context, db: Database, tenantId: string, keyId: string): Promise<void> {
  const now = Date.now()
  const token = newToken()
  const session = { id: await sha256Hex(token), tenantId, keyId, csrfToken: newToken(), createdAt: now, expiresAt: now + SESSION_TTL_MS }
  // Expired sessions are swept here, at the one moment sessions are written.
  await db.batch([db.delete(dashboardSessions).where(lt(dashboardSessions.expiresAt, now)), db.insert(dashboardSessions).values(session)])
  setCookie(c, SESSION_COOKIE, token, cookieOptions(c, SESSION_TTL_MS / 1000))
}

// A session counts only while it is unexpired and its key is not revoked.
export async function readSession(c: Context, db: Database): Promise<DashboardSession | null> {
  const token = getCookie(c, SESSION_COOKIE)
  if (!token) return null
  const id = await sha256Hex(token)
  const [row] = await db
    .select({ session: dashboardSessions })
    .from(dashboardSessions)
    .innerJoin(apiKeys, eq(apiKeys.id, dashboardSessions.keyId))
    .where(and(eq(dashboardSessions.id, id), gt(dashboardSessions.expiresAt, Date.now()), isNull(apiKeys.revokedAt)))
    .limit(1)
  return row?.session ?? null
}

export async function endSession(c: Context, db: Database, session: DashboardSession): Promise<void> {
  await db.delete(dashboardSessions).where(eq(dashboardSessions.id, session.id))
  deleteCookie(c, SESSION_COOKIE, cookieOptions(c, 0))
}
