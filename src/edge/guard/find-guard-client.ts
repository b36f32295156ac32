import { and, eq } from 'drizzle-orm'
import { database } from '../db/client.ts'
import { apiKeys } from '../db/schema.ts'
import type { Env } from '../env.ts'
import { ApiError } from '../errors.ts'
import type { ClientIdentity } from './guard-protocol.ts'

// The client named in the path, if its key belongs to the caller's tenant
// (another tenant's key answers 404 like a key that does not exist).
export async function findGuardClient(env: Env, tenantId: string, id: string): Promise<ClientIdentity> {
  const separator = id.indexOf('~')
  const keyId = separator < 0 ? id : id.slice(0, separator)
  const endUser = separator < 0 ? null : id.slice(separator + 1)
  const [key] = await database(env)
    .select({ id: apiKeys.id })
    .from(apiKeys)
    .where(and(eq(apiKeys.id, keyId), eq(apiKeys.tenantId, tenantId)))
    .limit(1)
  if (!key || endUser === '') throw new ApiError(404, `No guard client '${id}'`, { code: 'not_found', param: 'client_id' })
  return { tenantId, keyId, endUser }
}
