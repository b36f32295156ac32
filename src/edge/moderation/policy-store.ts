import { eq } from 'drizzle-orm'
import { moderationPolicySchema, type ModerationPolicy } from '../../shared/moderation/policy.ts'
import { database } from '../db/client.ts'
import { moderationPolicies } from '../db/schema.ts'
import type { Env } from '../env.ts'

export type StoredPolicy = { policy: ModerationPolicy; updatedAt: number } | null

export async function readModerationPolicy(env: Pick<Env, 'DB'>, tenantId: string): Promise<StoredPolicy> {
  const [row] = await database(env).select().from(moderationPolicies).where(eq(moderationPolicies.tenantId, tenantId)).limit(1)
  if (!row) return null
  // Rows were validated when written; parsing again keeps a row written by an
  // older schema from reaching the engine unchecked.
  const parsed = moderationPolicySchema.safeParse(row.policy)
  return parsed.success ? { policy: parsed.data, updatedAt: row.updatedAt } : null
}

export async function writeModerationPolicy(env: Pick<Env, 'DB'>, tenantId: string, policy: ModerationPolicy): Promise<number> {
  const updatedAt = Date.now()
  await database(env)
    .insert(moderationPolicies)
    .values({ tenantId, policy, updatedAt })
    .onConflictDoUpdate({ target: moderationPolicies.tenantId, set: { policy, updatedAt } })
  return updatedAt
}

export async function deleteModerationPolicy(env: Pick<Env, 'DB'>, tenantId: string): Promise<void> {
  await database(env).delete(moderationPolicies).where(eq(moderationPolicies.tenantId, tenantId))
}
