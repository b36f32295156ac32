import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'

// DESIGN.md's layout rules, checked: src/shared is pure (it runs in workerd,
// Node and browsers alike), and the edge and the runner meet only through
// src/shared and the wire.

const ROOT = join(import.meta.dirname, '..')

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && /\.(ts|tsx|js)$/.test(entry.name))
    .map((entry) => relative(ROOT, join(entry.parentPath, entry.name)))
}

function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8')
  return [...text.matchAll(/(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)].map(
    (match) => match[1] ?? match[2]!,
  )
}

describe('layout', () => {
  it('keeps src/shared free of runtime-specific modules and globals', () => {
    const offenders: string[] = []
    for (const file of sourceFiles('src/shared')) {
      const text = readFileSync(join(ROOT, file), 'utf8')
      for (const spec of importsOf(file)) {
        if (/^(node:|cloudflare:)/.test(spec) || spec.includes('/edge/') || spec.includes('/gpu-runner/')) offenders.push(`${file} imports ${spec}`)
      }
      if (/\bprocess\.|\bBuffer\b|\brequire\(/.test(text)) offenders.push(`${file} uses process, Buffer or require`)
    }
    expect(offenders).toEqual([])
  })

  it('keeps the edge and the runner apart', () => {
    const offenders: string[] = []
    for (const file of sourceFiles('src/edge')) {
      for (const spec of importsOf(file)) if (spec.includes('gpu-runner')) offenders.push(`${file} imports ${spec}`)
    }
    for (const file of sourceFiles('src/gpu-runner')) {
      for (const spec of importsOf(file)) if (spec.includes('/edge/') || spec.startsWith('cloudflare:')) offenders.push(`${file} imports ${spec}`)
    }
    expect(offenders).toEqual([])
  })

  it('finds the files it checks', () => {
    expect(sourceFiles('src/shared').length).toBeGreaterThan(5)
    expect(importsOf('src/edge/app.ts')).toContain('./routes/jobs.ts')
  })
})
