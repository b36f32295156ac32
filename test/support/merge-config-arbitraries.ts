import fc from 'fast-check'
import { MERGE_METHODS, METHOD_SPECS, type MergeMethodName } from '../../src/shared/merge-methods.ts'

// mergekit configs for fuzzing: valid ones built from the method specs (the
// right number of models, a base where one is needed, every parameter the
// method reads with a value of its type), and mutations that each break one
// field and know the key path the error must name. No Node built-ins: the
// edge tests run these inside workerd.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
type Config = { [key: string]: Json }
type Path = (string | number)[]

// Fractions of a tensor's elements; every other number may be any finite value.
const FRACTIONS = new Set(['density', 'gamma', 'epsilon'])
// -0 reads back from YAML and JSON as 0.
const finite = (min: number, max: number) => fc.double({ min, max, noNaN: true }).map((value) => value + 0)

function numberSetting(name: string): fc.Arbitrary<Json> {
  const value = FRACTIONS.has(name) ? finite(0, 1) : finite(-2, 2)
  const plain: fc.Arbitrary<Json> = fc.oneof(value, fc.array(value, { minLength: 1, maxLength: 4 }))
  const condition = fc.record({ filter: fc.constantFrom('self_attn', 'mlp', '*', 'layers.0', 'embed'), value: plain }, { requiredKeys: ['value'] })
  return fc.oneof({ weight: 3, arbitrary: plain }, { weight: 1, arbitrary: condition }, { weight: 1, arbitrary: fc.array(condition, { minLength: 1, maxLength: 3 }) })
}

function parametersFor(method: MergeMethodName, which: 'global' | 'perModel'): fc.Arbitrary<Config | undefined> {
  const defs = METHOD_SPECS[method][which]
  if (defs.length === 0) return fc.constant(undefined)
  const entries = Object.fromEntries(defs.map((def) => [def.name, typeof def.default === 'boolean' ? fc.boolean() : numberSetting(def.name)]))
  return fc.record(entries, { requiredKeys: defs.filter((def) => def.required).map((def) => def.name) }) as fc.Arbitrary<Config>
}

const withOptional = (config: Config, key: string, value: Json | undefined): Config => (value === undefined ? config : { ...config, [key]: value })

// A valid config over the given model references (at least 4 of them).
export function validConfig(refs: readonly string[]): fc.Arbitrary<Config> {
  return fc.constantFrom(...MERGE_METHODS).chain((method) => {
    const spec = METHOD_SPECS[method]
    const count = fc.integer({ min: spec.models.min, max: Math.min(spec.models.max, spec.models.min + 2, refs.length - 1) })
    const dtype = fc.option(fc.constantFrom('float32', 'fp16', 'bfloat16', 'bf16', 'half'), { nil: undefined })
    return fc
      .record({
        count,
        order: fc.shuffledSubarray([...refs], { minLength: refs.length, maxLength: refs.length }),
        withBase: spec.needsBase ? fc.constant(true) : fc.boolean(),
        useSlices: fc.boolean(),
        baseInList: fc.boolean(),
        layers: fc.integer({ min: 1, max: 4 }),
        starts: fc.array(fc.integer({ min: 0, max: 40 }), { minLength: refs.length, maxLength: refs.length }),
        global: parametersFor(method, 'global'),
        perModel: fc.array(parametersFor(method, 'perModel'), { minLength: refs.length, maxLength: refs.length }),
        dtype,
        outDtype: dtype,
        tokenizer: fc.option(fc.constantFrom('base', 'first'), { nil: undefined }),
      })
      .map((pick) => {
        const [baseRef, ...rest] = pick.order
        const base = pick.withBase ? baseRef! : undefined
        const others = rest.slice(0, pick.count)
        const listed = base !== undefined && pick.baseInList ? [base, ...others] : others
        let config: Config = { merge_method: method }
        config = withOptional(config, 'base_model', base)
        if (pick.useSlices) {
          const sources = listed.map((model, i) => withOptional({ model, layer_range: [pick.starts[i]!, pick.starts[i]! + pick.layers] }, 'parameters', pick.perModel[i]))
          config.slices = [{ sources }]
        } else {
          config.models = listed.map((model, i) => withOptional({ model }, 'parameters', pick.perModel[i]))
        }
        config = withOptional(config, 'parameters', pick.global)
        config = withOptional(config, 'dtype', pick.dtype)
        config = withOptional(config, 'out_dtype', pick.outDtype)
        config = withOptional(config, 'tokenizer_source', pick.tokenizer === 'first' ? listed[0] : pick.tokenizer)
        return config
      })
  })
}

// Every place in a config, with the kind of value that belongs there.
type Leaf = { path: Path; kind: 'method' | 'model' | 'dtype' | 'string' | 'filter' | 'number' | 'fraction' | 'boolean' | 'layer' | 'object' | 'list' }

function leavesOf(config: Config): Leaf[] {
  const leaves: Leaf[] = [{ path: [], kind: 'object' }]
  const method = config.merge_method as MergeMethodName
  const defs = [...METHOD_SPECS[method].global, ...METHOD_SPECS[method].perModel]
  const parameters = (value: Json | undefined, path: Path) => {
    if (value === undefined) return
    leaves.push({ path, kind: 'object' })
    for (const [name, setting] of Object.entries(value as Config)) {
      const def = defs.find((d) => d.name === name)!
      const kind = typeof def.default === 'boolean' ? 'boolean' : FRACTIONS.has(name) ? 'fraction' : 'number'
      const walk = (node: Json, at: Path) => {
        if (Array.isArray(node)) return node.forEach((entry, i) => walk(entry, [...at, i]))
        if (typeof node === 'object' && node !== null) {
          if ('filter' in node) leaves.push({ path: [...at, 'filter'], kind: 'filter' })
          return walk(node.value!, [...at, 'value'])
        }
        leaves.push({ path: at, kind })
      }
      walk(setting, [...path, name])
    }
  }
  leaves.push({ path: ['merge_method'], kind: 'method' })
  if (config.base_model !== undefined) leaves.push({ path: ['base_model'], kind: 'model' })
  for (const key of ['dtype', 'out_dtype'] as const) if (config[key] !== undefined) leaves.push({ path: [key], kind: 'dtype' })
  if (config.tokenizer_source !== undefined) leaves.push({ path: ['tokenizer_source'], kind: 'string' })
  parameters(config.parameters, ['parameters'])
  const models = config.models as Config[] | undefined
  if (models) leaves.push({ path: ['models'], kind: 'list' })
  models?.forEach((entry, i) => {
    leaves.push({ path: ['models', i], kind: 'object' }, { path: ['models', i, 'model'], kind: 'model' })
    parameters(entry.parameters, ['models', i, 'parameters'])
  })
  const slices = config.slices as { sources: Config[] }[] | undefined
  if (slices) leaves.push({ path: ['slices'], kind: 'list' })
  slices?.forEach((slice, i) => {
    leaves.push({ path: ['slices', i], kind: 'object' }, { path: ['slices', i, 'sources'], kind: 'list' })
    slice.sources.forEach((source, j) => {
      const at = ['slices', i, 'sources', j]
      leaves.push({ path: at, kind: 'object' }, { path: [...at, 'model'], kind: 'model' }, { path: [...at, 'layer_range'], kind: 'list' })
      leaves.push({ path: [...at, 'layer_range', 0], kind: 'layer' }, { path: [...at, 'layer_range', 1], kind: 'layer' })
      parameters(source.parameters, [...at, 'parameters'])
    })
  })
  return leaves
}

// Values that do not belong in a place of the given kind.
function wrongValue(kind: Leaf['kind']): fc.Arbitrary<Json | typeof NaN> {
  const anything = fc.oneof(fc.integer(), fc.boolean(), fc.string({ maxLength: 8 }), fc.constant(null), fc.constant([] as Json[]), fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 2 }))
  const notString = anything.filter((value) => typeof value !== 'string')
  const nonFinite = fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY)
  switch (kind) {
    case 'method':
      return fc.oneof(notString, fc.string({ maxLength: 12 }).filter((name) => !(MERGE_METHODS as readonly string[]).includes(name)))
    case 'model':
      return fc.oneof(notString, fc.constant(''))
    case 'dtype':
      return fc.oneof(notString, fc.constantFrom('float8', 'int8', 'F32', 'FLOAT32', '', 'bfloat'))
    case 'string':
      return fc.oneof(notString, fc.constantFrom('', 'union'))
    case 'filter':
      // null is a valid filter (no filter).
      return notString.filter((value) => value !== null)
    case 'number':
      return fc.oneof(fc.string({ maxLength: 6 }), fc.boolean(), fc.constant(null), fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { minKeys: 1, maxKeys: 2 }), nonFinite)
    case 'fraction':
      return fc.oneof(fc.string({ maxLength: 6 }), fc.boolean(), nonFinite, fc.double({ min: 1.000001, max: 1e12, noNaN: true }), fc.double({ min: -1e12, max: -0.000001, noNaN: true }))
    case 'boolean':
      return fc.oneof(fc.integer(), fc.string({ maxLength: 6 }), fc.constant(null), fc.constant([] as Json[]), nonFinite)
    case 'layer':
      return fc.oneof(fc.integer({ min: -1000, max: -1 }), fc.constantFrom(0.5, 2 ** 53, 1e300, Number.NaN, Number.POSITIVE_INFINITY), fc.string({ maxLength: 4 }), fc.boolean(), fc.constant(null))
    case 'object':
      return fc.oneof(fc.integer(), fc.string({ maxLength: 6 }), fc.constant([] as Json[]), fc.constant(null), fc.boolean())
    case 'list':
      return fc.oneof(fc.integer(), fc.string({ maxLength: 6 }), fc.constant([] as Json[]), fc.constant(null), fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 2 }))
  }
}

function setAt(config: Config, path: Path, value: Json): Config {
  if (path.length === 0) return value as Config
  const copy: any = structuredClone(config)
  let node = copy
  for (const key of path.slice(0, -1)) node = node[key]
  // An own property even for __proto__.
  Object.defineProperty(node, path.at(-1)!, { value, enumerable: true, writable: true, configurable: true })
  return copy
}

export function formatPath(path: Path): string {
  return path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${key}` : key), '')
}

// A valid config broken in one place, with the path its error must name (the
// bad field, or the field a union or a list of it sits in).
export type BrokenConfig = { config: Json; path: string; what: string }

export function brokenConfig(refs: readonly string[]): fc.Arbitrary<BrokenConfig> {
  return validConfig(refs).chain((config) => {
    const leaves = leavesOf(config)
    const wrongType = fc
      .constantFrom(...leaves)
      .chain((leaf) => wrongValue(leaf.kind).map((value) => ({ config: setAt(config, leaf.path, value as Json), path: formatPath(leaf.path), what: `${formatPath(leaf.path) || 'the config'} = ${String(JSON.stringify(value))}` })))
    const objects = leaves.filter((leaf) => leaf.kind === 'object' && leaf.path.length > 0)
    const unknownKey = fc
      .tuple(fc.constantFrom(...leaves.filter((leaf) => leaf.kind === 'object' && !String(leaf.path.at(-1)).startsWith('param'))), fc.constantFrom('modles', 'paramters', 'weight', 'layer_ranges', 'x', '__proto__', 'constructor'))
      .map(([leaf, key]) => {
        const at = [...leaf.path, key]
        const target = leaf.path.length === 0 ? config : (leaf.path.reduce<any>((node, k) => node[k], config) as Config)
        return { config: setAt(config, at, key in target ? 1 : 'extra'), path: formatPath(at), what: `unknown key ${formatPath(at)}` }
      })
      .filter(({ config: broken }) => broken !== null)
    const method = config.merge_method as MergeMethodName
    const spec = METHOD_SPECS[method]
    const fewer = spec.models.min > 0 && config.models
      ? [fc.constant({ config: { ...config, models: (config.models as Json[]).filter((entry) => (entry as Config).model === config.base_model).concat([]) }, path: 'models', what: 'too few models' })]
      : []
    const noBase = spec.needsBase && config.base_model !== undefined && config.models
      ? [fc.constant({ config: Object.fromEntries(Object.entries(config).filter(([key]) => key !== 'base_model')) as Json, path: 'base_model', what: 'no base model' })]
      : []
    const options: fc.Arbitrary<BrokenConfig>[] = [wrongType, unknownKey, ...fewer, ...noBase]
    void objects
    return fc.oneof(...options)
  })
}

// mergekit's YAML, with anchors for repeated parameter blocks sometimes.
export const ALIAS_BOMB = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`)].join('\n')
