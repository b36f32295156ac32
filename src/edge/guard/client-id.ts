import type { Env } from '../env.ts'
import type { ClientIdentity } from './guard-protocol.ts'

// A client is an API key, or a key and the end-user id its caller names in
// `x-moat-end-user` (a SaaS putting many users behind one key); each has
// its own ClientGuard object.
export const END_USER_HEADER = 'x-moat-end-user'
const END_USER_PATTERN = /^[\w.@:+-]{1,128}$/

export function clientId(client: Pick<ClientIdentity, 'keyId' | 'endUser'>): string {
  return client.endUser === null ? client.keyId : `${client.keyId}~${client.endUser}`
}

export function isValidEndUser(value: string): boolean {
  return END_USER_PATTERN.test(value)
}

// idFromName hashes the name on every call, on every request; an id is a
// plain value (a stub is not: it belongs to its request), so each isolate
// keeps the ids it has made.
const ids = new Map<string, DurableObjectId>()
const IDS_CAP = 10_000

export function guardStub(env: Pick<Env, 'CLIENT_GUARD'>, client: Pick<ClientIdentity, 'keyId' | 'endUser'>) {
  const name = clientId(client)
  let id = ids.get(name)
  if (!id) {
    id = env.CLIENT_GUARD.idFromName(name)
    if (ids.size >= IDS_CAP) ids.clear()
    ids.set(name, id)
  }
  return env.CLIENT_GUARD.get(id)
}
