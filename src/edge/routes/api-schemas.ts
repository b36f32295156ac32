import { z } from '@hono/zod-openapi'

// Schemas shared by several routes of the public API.

export const errorSchema = z
  .object({
    error: z.object({
      message: z.string(),
      type: z.string(),
      param: z.string().nullable(),
      code: z.string().nullable(),
    }),
  })
  .openapi('Error')

const errorContent = { 'application/json': { schema: errorSchema } }

export const errorResponses = {
  400: { description: 'Invalid request', content: errorContent },
  401: { description: 'Missing, invalid or revoked key', content: errorContent },
  403: { description: 'The key lacks the scope', content: errorContent },
  404: { description: 'No such object in this tenant', content: errorContent },
} as const

export const conflictResponse = { 409: { description: 'Conflicts with the current state', content: errorContent } } as const
export const unprocessableResponse = { 422: { description: 'Well-formed but refused', content: errorContent } } as const
export const tooLargeResponse = { 413: { description: 'Body too large', content: errorContent } } as const

export const listQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20).openapi({ param: { name: 'limit', in: 'query' } }),
  after: z.string().max(64).optional().openapi({ param: { name: 'after', in: 'query' } }),
})

export function listSchema<T extends z.ZodType>(item: T) {
  return z.object({ object: z.literal('list'), data: z.array(item), has_more: z.boolean() })
}

export const idParam = (name: string) =>
  z.string().min(1).max(64).openapi({ param: { name, in: 'path' } })

export const jsonBody = <T extends z.ZodType>(schema: T) => ({
  required: true,
  content: { 'application/json': { schema } },
})

export const jsonResponse = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
})

// OpenAI's list shape from `limit + 1` rows fetched newest first.
export function toList<Row, Item>(rows: Row[], limit: number, view: (row: Row) => Item) {
  return { object: 'list' as const, data: rows.slice(0, limit).map(view), has_more: rows.length > limit }
}

export const bearerSecurity = [{ bearer: [] }]
