import { z } from 'zod'

// File and version names become R2 key segments and runner cache names:
// plain characters only, never '.' or '..'.
const SAFE_SEGMENT = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,200}$/
export const fileNameSchema = z.string().regex(SAFE_SEGMENT, 'use 1-200 letters, digits, dots, dashes or underscores')
export const versionNameSchema = z
  .string()
  .regex(/^(?!\.{1,2}$)[A-Za-z0-9._-]{1,64}$/, 'use 1-64 letters, digits, dots, dashes or underscores')

export function modelFileKey(tenantId: string, modelId: string, version: string, fileId: string, name: string): string {
  return `tenants/${tenantId}/models/${modelId}/versions/${version}/${fileId}/${name}`
}

export function uploadKey(tenantId: string, uploadId: string, filename: string): string {
  return `tenants/${tenantId}/uploads/${uploadId}/${filename}`
}
