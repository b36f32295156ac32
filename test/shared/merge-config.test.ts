import { describe, expect, it } from 'vitest'
import {
  evaluateSetting,
  MergeConfigError,
  outputSlices,
  parseMergeConfig,
  referencedModels,
  resolveParameter,
} from '../../src/shared/merge-config.ts'

const TIES = `
models:
  - model: ./a
    parameters:
      density: 0.5
      weight: [0, 0.5, 1]
  - model: ./b
    parameters:
      density: 0.7
      weight:
        - filter: mlp
          value: 0.2
        - value: 0.9
merge_method: ties
base_model: ./base
parameters:
  normalize: true
  density: 0.1
dtype: bfloat16
`

function errorOf(text: string): MergeConfigError {
  try {
    parseMergeConfig(text)
  } catch (error) {
    if (error instanceof MergeConfigError) return error
    throw error
  }
  throw new Error('expected the config to be refused')
}

describe('parseMergeConfig', () => {
  it('reads a mergekit TIES config and normalises models into one slice with the base added', () => {
    const config = parseMergeConfig(TIES)
    expect(config.merge_method).toBe('ties')
    expect(referencedModels(config)).toEqual(['./base', './a', './b'])
    const [slice, ...rest] = outputSlices(config, () => 4)
    expect(rest).toEqual([])
    expect(slice!.sources.map((s) => [s.model, s.layer_range])).toEqual([
      ['./a', [0, 4]],
      ['./b', [0, 4]],
      ['./base', [0, 4]],
    ])
  })

  it('applies mergekit precedence: source, then slice, then global', () => {
    const config = parseMergeConfig(TIES)
    const [slice] = outputSlices(config, () => 4)
    const name = 'model.layers.1.mlp.up_proj.weight'
    expect(resolveParameter(config, slice!, 'density', './a', name, 0)).toBe(0.5)
    expect(resolveParameter(config, slice!, 'density', './base', name, 0)).toBe(0.1)
    expect(resolveParameter(config, slice!, 'weight', './a', name, 0.25)).toBeCloseTo(0.25)
    expect(resolveParameter(config, slice!, 'weight', './b', name, 0)).toBe(0.2)
    expect(resolveParameter(config, slice!, 'weight', './b', 'model.layers.1.self_attn.q_proj.weight', 0)).toBe(0.9)
    expect(resolveParameter(config, slice!, 'normalize', null, name, 0)).toBe(true)
    expect(resolveParameter(config, slice!, 'lambda', null, name, 0)).toBeUndefined()
  })

  it('reads slices with half-open layer ranges and slice-level parameters', () => {
    const config = parseMergeConfig(`
slices:
  - sources:
      - model: a
        layer_range: [0, 2]
  - sources:
      - model: b
        layer_range: [1, 3]
    parameters:
      scale: 0.5
merge_method: passthrough
dtype: float16
`)
    const slices = outputSlices(config, () => 99)
    expect(slices).toHaveLength(2)
    expect(resolveParameter(config, slices[1]!, 'scale', 'b', 'x', 0)).toBe(0.5)
  })

  it('names the key path of each error', () => {
    expect(errorOf('merge_method: ties\nbase_model: b\nmodels:\n  - model: a\n    parameters:\n      weight: {}\n').message).toMatch(/^models\[0\]\.parameters\.weight: /)
    expect(errorOf('merge_method: linear\nmodels:\n  - model: a\n    paramters: {}\n').message).toBe('models[0].paramters: unknown key')
    expect(errorOf('merge_method: frobnicate\nmodels: [{model: a}]\n').message).toMatch(/^merge_method: /)
    expect(errorOf('merge_method: passthrough\nslices:\n  - sources:\n      - model: a\n        layer_range: [4, 2]\n').message).toMatch(/^slices\[0\]\.sources\[0\]\.layer_range: must be \[start, end\)/)
    expect(errorOf('merge_method: linear\nslices:\n  - sources:\n      - {model: a, layer_range: [0, 2]}\n      - {model: b, layer_range: [0, 3]}\n').message).toMatch(/^slices\[0\]\.sources: every source/)
    expect(errorOf('merge_method: ties\nmodels: [{model: a}]\n').message).toMatch(/^base_model: ties needs a base_model/)
    expect(errorOf('merge_method: slerp\nbase_model: a\nmodels: [{model: a}, {model: b}, {model: c}]\n').message).toMatch(/^models: slerp takes 1 model/)
    expect(errorOf('merge_method: linear\nmodels: [{model: a}]\nslices: [{sources: [{model: a, layer_range: [0, 1]}]}]\n').message).toMatch(/exactly one of 'models' or 'slices'/)
    expect(errorOf('merge_method: linear\nmodels: [{model: a}]\ndtype: float8\n').message).toMatch(/^dtype: /)
    expect(errorOf('merge_method: linear\nmodels: [{model: a}]\ntokenizer_source: union\n').message).toMatch(/^tokenizer_source: 'union' is not supported/)
  })

  it('refuses invalid YAML, duplicate keys and alias bombs', () => {
    expect(errorOf('merge_method: [').message).toMatch(/invalid YAML/)
    expect(errorOf('merge_method: linear\nmerge_method: ties\n').message).toMatch(/invalid YAML.*unique/i)
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`)].join('\n')
    expect(errorOf(bomb).message).toMatch(/invalid YAML/)
  })

  it('accepts the same structure as JSON', () => {
    expect(parseMergeConfig('{"merge_method": "linear", "models": [{"model": "a", "parameters": {"weight": 1}}]}').models).toHaveLength(1)
  })
})

describe('evaluateSetting', () => {
  it('interpolates numeric gradients over t, as mergekit does', () => {
    expect(evaluateSetting([0, 1], 'x', 0)).toBe(0)
    expect(evaluateSetting([0, 1], 'x', 1)).toBe(1)
    expect(evaluateSetting([0, 0.5, 0.3, 0.7, 1], 'x', 0.5)).toBeCloseTo(0.3)
    expect(evaluateSetting([0, 0.5, 0.3, 0.7, 1], 'x', 0.3)).toBeCloseTo(0.5 + 0.2 * (0.3 - 0.5))
    expect(evaluateSetting(['a', 'b', 'c'], 'x', 0.9)).toBe('b')
  })

  it('applies the first matching filter, and yields nothing when none matches', () => {
    const setting = [{ filter: 'self_attn', value: [0, 1] }, { filter: 'mlp', value: 0.7 }]
    expect(evaluateSetting(setting, 'model.layers.0.self_attn.o_proj.weight', 0.5)).toBe(0.5)
    expect(evaluateSetting(setting, 'model.layers.0.mlp.down_proj.weight', 0.5)).toBe(0.7)
    expect(evaluateSetting(setting, 'model.norm.weight', 0.5)).toBeUndefined()
    expect(evaluateSetting({ filter: '*', value: 3 }, 'anything', 0)).toBe(3)
  })
})
