// What a key may do. `admin` implies every other scope and is what manages keys.
export const SCOPES = [
  'admin',
  'models:read',
  'models:write',
  'jobs:read',
  'jobs:write',
  'uploads:write',
  'inference',
  'moderation',
  'usage:read',
] as const
export type Scope = (typeof SCOPES)[number]

export const DEFAULT_KEY_SCOPES: Scope[] = SCOPES.filter((scope) => scope !== 'admin')

export function hasScope(granted: readonly string[], needed: Scope): boolean {
  return granted.includes('admin') || granted.includes(needed)
}
