import { OpenAPIHono } from '@hono/zod-openapi'
import type { AppEnv } from '../env.ts'
import { validationHook } from '../middleware/error-envelope.ts'

// Every resource router validates with the same hook, so a bad field is
// always a 400 in the one envelope, naming the field.
export function createRouter() {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
}
