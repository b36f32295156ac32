import fc from 'fast-check'

// Request bodies from the JSON Schemas of an OpenAPI document: values that
// satisfy a schema (as far as JSON Schema can say; refinements in code are
// not in the document), and single-field mutations of them that know the
// path of the field they broke. No Node built-ins: the edge tests run this
// inside workerd.

export type Schema = { [keyword: string]: any }
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
type Path = (string | number)[]

// Strings a schema cannot describe but a route checks (URLs it will call).
const KNOWN_STRINGS: Record<string, string[]> = {
  url: ['https://hooks.example.com/moat'],
  upstream_url: ['https://api.example.com/v1'],
  events: ['job.succeeded', 'job.*', '*'],
}

export function resolve(schema: Schema, doc: Schema): Schema {
  let current = schema
  for (let i = 0; i < 10 && typeof current?.$ref === 'string'; i++) {
    const name = current.$ref.replace('#/components/schemas/', '')
    current = doc.components?.schemas?.[name] ?? {}
  }
  return current ?? {}
}

function typesOf(schema: Schema): string[] {
  if (Array.isArray(schema.type)) return schema.type
  if (typeof schema.type === 'string') return [schema.type]
  if (schema.properties) return ['object']
  if (schema.items) return ['array']
  return []
}

function patternString(pattern: string, minLength: number, maxLength: number): fc.Arbitrary<string> {
  const regex = new RegExp(pattern, 'u')
  // fast-check cannot generate from lookaheads; drop them and filter instead.
  const simple = pattern.replace(/\(\?[!=][^)]*\)/g, '')
  let arbitrary: fc.Arbitrary<string>
  try {
    arbitrary = fc.stringMatching(new RegExp(simple, 'u'))
  } catch {
    arbitrary = fc.string({ minLength, maxLength: Math.min(maxLength, minLength + 12, 200) })
  }
  return arbitrary.filter((value) => regex.test(value) && value.length >= minLength && value.length <= maxLength)
}

// A value the schema accepts. `key` is the property name it sits under.
export function valueOf(schema: Schema, doc: Schema, key = '', depth = 0): fc.Arbitrary<Json> {
  const s = resolve(schema, doc)
  if (depth > 6) return fc.constant(null)
  if (s.const !== undefined) return fc.constant(s.const)
  if (Array.isArray(s.enum)) return fc.constantFrom(...(s.enum as Json[]))
  const variants = s.oneOf ?? s.anyOf
  if (Array.isArray(variants)) return fc.oneof(...variants.map((variant: Schema) => valueOf(variant, doc, key, depth + 1)))
  if (Array.isArray(s.allOf)) return valueOf(Object.assign({}, ...s.allOf.map((part: Schema) => resolve(part, doc))), doc, key, depth + 1)
  const types = typesOf(s)
  const options: fc.Arbitrary<Json>[] = []
  if (s.nullable === true || types.includes('null')) options.push(fc.constant(null))
  for (const type of types) {
    if (type === 'string') {
      const minLength = s.minLength ?? 0
      const maxLength = Math.min(s.maxLength ?? 40, 200)
      if (KNOWN_STRINGS[key]) options.push(fc.constantFrom(...KNOWN_STRINGS[key]!))
      // The pattern bounds the length itself; only the schema's own bounds filter.
      else if (typeof s.pattern === 'string') options.push(patternString(s.pattern, minLength, s.maxLength ?? Number.MAX_SAFE_INTEGER))
      else options.push(fc.string({ minLength, maxLength: Math.min(maxLength, minLength + 16) }))
    } else if (type === 'integer') {
      const min = s.minimum ?? (s.exclusiveMinimum !== undefined ? s.exclusiveMinimum + 1 : -1000)
      const max = s.maximum ?? (s.exclusiveMaximum !== undefined ? s.exclusiveMaximum - 1 : Math.max(min, 0) + 1000)
      options.push(fc.integer({ min: Math.max(min, Number.MIN_SAFE_INTEGER), max: Math.min(max, Number.MAX_SAFE_INTEGER) }))
    } else if (type === 'number') {
      const min = s.minimum ?? s.exclusiveMinimum ?? -1000
      const max = s.maximum ?? s.exclusiveMaximum ?? Math.max(min, 0) + 1000
      options.push(fc.double({ min, max, noNaN: true, noDefaultInfinity: true }).filter((n) => (s.exclusiveMinimum === undefined || n > s.exclusiveMinimum) && (s.exclusiveMaximum === undefined || n < s.exclusiveMaximum)).map((n) => n + 0))
    } else if (type === 'boolean') {
      options.push(fc.boolean())
    } else if (type === 'array') {
      const minLength = s.minItems ?? 0
      options.push(fc.array(valueOf(s.items ?? {}, doc, key, depth + 1), { minLength, maxLength: Math.min(s.maxItems ?? minLength + 3, minLength + 3) }))
    } else if (type === 'object') {
      const properties = (s.properties ?? {}) as Record<string, Schema>
      const record = fc.record(
        Object.fromEntries(Object.entries(properties).map(([name, property]) => [name, valueOf(property, doc, name, depth + 1)])),
        { requiredKeys: (s.required ?? []) as string[] },
      ) as fc.Arbitrary<{ [key: string]: Json }>
      options.push(record)
    }
  }
  if (options.length === 0) return fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.boolean(), fc.constant(null))
  return fc.oneof(...options)
}

// The schema a path in a value falls under, or null where none says.
function schemaAt(schema: Schema, doc: Schema, value: Json, path: Path): Schema | null {
  let s: Schema | null = resolve(schema, doc)
  let node: Json = value
  for (const key of path) {
    if (!s) return null
    if (s.oneOf || s.anyOf || s.allOf) return null
    if (typeof key === 'number') s = s.items ? resolve(s.items, doc) : null
    else s = s.properties?.[key] ? resolve(s.properties[key], doc) : null
    node = (node as any)?.[key]
  }
  return s
}

// Every path in a value.
function pathsOf(value: Json, path: Path = [], out: Path[] = []): Path[] {
  out.push(path)
  if (Array.isArray(value)) value.forEach((entry, i) => pathsOf(entry, [...path, i], out))
  else if (value !== null && typeof value === 'object') for (const [key, entry] of Object.entries(value)) pathsOf(entry, [...path, key], out)
  return out
}

function setAt(value: Json, path: Path, next: Json | undefined): Json {
  if (path.length === 0) return next as Json
  const copy: any = structuredClone(value)
  let node = copy
  for (const key of path.slice(0, -1)) node = node[key]
  const last = path.at(-1)!
  if (next === undefined) {
    if (Array.isArray(node)) node.splice(last as number, 1)
    else delete node[last]
  } else {
    Object.defineProperty(node, last, { value: next, enumerable: true, writable: true, configurable: true })
  }
  return copy
}

// A value that a field of this schema never accepts: another JSON type, or
// a string out of its pattern or length, or a number out of its range.
function wrongFor(schema: Schema | null): fc.Arbitrary<Json> {
  const s = schema ?? {}
  const types = typesOf(s)
  const candidates: fc.Arbitrary<Json>[] = []
  if (!types.includes('string') && !s.enum) candidates.push(fc.string({ maxLength: 6 }))
  if (!types.includes('number') && !types.includes('integer')) candidates.push(fc.integer())
  if (!types.includes('boolean')) candidates.push(fc.boolean())
  if (!types.includes('array')) candidates.push(fc.constant([1, 'x'] as Json))
  if (!types.includes('object') && !s.properties) candidates.push(fc.constant({ nested: true } as Json))
  if (Array.isArray(s.enum)) candidates.push(fc.string({ maxLength: 8 }).filter((value) => !s.enum.includes(value)))
  if (types.includes('string') && typeof s.maxLength === 'number' && s.maxLength < 5000) candidates.push(fc.constant('x'.repeat(s.maxLength + 1)))
  if (types.includes('integer')) candidates.push(fc.constant(0.5))
  if (typeof s.maximum === 'number') candidates.push(fc.constant(s.maximum + 1))
  if (typeof s.minimum === 'number') candidates.push(fc.constant(s.minimum - 1))
  return fc.oneof(...candidates)
}

// `base` is the valid body before the mutation.
export type Mutated = { base: Json; body: Json; path: string; what: string; mustRefuse: boolean }

const dotted = (path: Path) => path.map(String).join('.')

// A valid body broken in one field (or left valid by the mutation, which
// `mustRefuse` says).
export function mutatedBody(schema: Schema, doc: Schema): fc.Arbitrary<Mutated> {
  return valueOf(schema, doc).chain((body) => {
    const paths = pathsOf(body).filter((path) => path.length > 0)
    if (paths.length === 0) return fc.constant({ base: body, body: [] as Json, path: '', what: 'an array for the body', mustRefuse: true })
    return fc.tuple(fc.constantFrom(...paths), fc.nat(2)).chain(([path, kind]) => {
      const parentPath = path.slice(0, -1)
      const parent = schemaAt(schema, doc, body, parentPath)
      const field = schemaAt(schema, doc, body, path)
      const last = path.at(-1)!
      if (kind === 0 && typeof last === 'string') {
        const required = parent ? ((parent.required ?? []) as string[]).includes(last) : false
        return fc.constant({ base: body, body: setAt(body, path, undefined), path: dotted(path), what: `${dotted(path)} removed`, mustRefuse: required })
      }
      if (kind === 1 && parent && parent.additionalProperties === false && typeof last === 'string') {
        const extra = [...parentPath, 'unexpected_field']
        return fc.constant({ base: body, body: setAt(body, extra, 1), path: dotted(extra), what: `unknown field ${dotted(extra)}`, mustRefuse: true })
      }
      return wrongFor(field).map((value) => ({
        base: body,
        body: setAt(body, path, value),
        path: dotted(path),
        what: `${dotted(path)} = ${JSON.stringify(value).slice(0, 40)}`,
        // Only where the document fully describes the field.
        mustRefuse: field !== null && parent !== null && !(field.oneOf || field.anyOf) && Object.keys(field).length > 0,
      }))
    })
  })
}
