import { and, eq } from 'drizzle-orm'
import { randomString } from '../../shared/ids.ts'
import type { Database } from '../db/client.ts'
import { idempotencyRecords } from '../db/schema.ts'

// A form that starts something carries a token made when the page was drawn,
// so a double click or a resubmitted page starts it once: the first
// submission claims the token (in the API's idempotency records, per key),
// the others are sent where the first one went.
const TOKEN_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
const TOKEN_PATTERN = /^[0-9A-Za-z]{24}$/

export function newSubmissionToken(): string {
  return randomString(24, TOKEN_ALPHABET)
}

export type SubmissionClaim =
  | { kind: 'first'; done: (location: string) => Promise<void>; release: () => Promise<void> }
  | { kind: 'repeat'; location: string | null }
  | { kind: 'untracked' }

export async function claimSubmission(db: Database, keyId: string, token: string): Promise<SubmissionClaim> {
  if (!TOKEN_PATTERN.test(token)) return { kind: 'untracked' }
  const scope = `dashboard:${keyId}`
  const where = and(eq(idempotencyRecords.scope, scope), eq(idempotencyRecords.key, token))
  const claimed = await db
    .insert(idempotencyRecords)
    .values({ scope, key: token, fingerprint: 'dashboard-form', state: 'pending', createdAt: Date.now() })
    .onConflictDoNothing()
    .returning({ key: idempotencyRecords.key })
  if (claimed.length === 0) {
    const [record] = await db.select().from(idempotencyRecords).where(where)
    return { kind: 'repeat', location: record?.state === 'complete' ? (record.body ?? null) : null }
  }
  return {
    kind: 'first',
    done: async (location) => {
      await db.update(idempotencyRecords).set({ state: 'complete', status: 303, body: location }).where(where).run()
    },
    release: async () => {
      await db.delete(idempotencyRecords).where(where).run()
    },
  }
}
