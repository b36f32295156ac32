import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { MergeConfigError, parseMergeConfig, validateMergeConfig } from '../../src/shared/merge-config.ts'
import { ALIAS_BOMB, brokenConfig, validConfig } from '../support/merge-config-arbitraries.ts'
import { fuzzSettings, fuzzTimeout } from '../support/fuzz-settings.ts'

// The mergekit config parser on generated configs: every valid one is
// accepted as written (YAML, YAML with anchors, JSON); every one broken in a
// single field is refused with a MergeConfigError whose path names that field;
// mangled YAML text is refused or accepted, never anything else.

const settings = fuzzSettings(150, process.env)
const refs = ['./base', './a', 'org/b', 'c/2', 'd']

function refusal(run: () => unknown): MergeConfigError {
  try {
    run()
  } catch (error) {
    if (error instanceof MergeConfigError) return error
    throw error
  }
  throw new Error('expected the config to be refused')
}

// Whether an error path names the bad field or a field that holds it.
const names = (issuePath: string, badPath: string) => issuePath === badPath || badPath.startsWith(`${issuePath}.`) || badPath.startsWith(`${issuePath}[`)

describe('merge config fuzzing', () => {
  it(`accepts every valid config as YAML, as YAML with anchors and as JSON (${settings.numRuns} cases)`, () => {
    fc.assert(
      fc.property(validConfig(refs), (config) => {
        expect(parseMergeConfig(stringify(config))).toEqual(config)
        expect(parseMergeConfig(stringify(config, { aliasDuplicateObjects: true }))).toEqual(config)
        expect(parseMergeConfig(JSON.stringify(config))).toEqual(config)
      }),
      settings,
    )
  }, fuzzTimeout(settings, 10))

  it(`refuses a config broken in one field with an error that names it (${settings.numRuns} cases)`, () => {
    fc.assert(
      fc.property(brokenConfig(refs), fc.boolean(), (broken, asYaml) => {
        const error = asYaml ? refusal(() => parseMergeConfig(stringify(broken.config))) : refusal(() => validateMergeConfig(broken.config))
        expect(error.issues.length).toBeGreaterThan(0)
        const named = error.issues.some((issue) => names(issue.path, broken.path))
        if (!named) throw new Error(`${broken.what}: the error names ${error.issues.map((issue) => `'${issue.path}'`).join(', ')}: ${error.message}`)
        for (const issue of error.issues) expect(issue.message.length).toBeGreaterThan(3)
      }),
      settings,
    )
  }, fuzzTimeout(settings, 10))

  it(`refuses or accepts mangled YAML text, with alias bombs and deep nesting among it, and nothing else (${settings.numRuns} cases)`, () => {
    const mangle = fc.oneof(
      { weight: 8, arbitrary: fc.tuple(fc.nat(), fc.string({ maxLength: 6 })).map(([at, text]) => (yaml: string) => yaml.slice(0, at % (yaml.length + 1)) + text + yaml.slice(at % (yaml.length + 1))) },
      { weight: 8, arbitrary: fc.tuple(fc.nat(), fc.nat({ max: 20 })).map(([at, length]) => (yaml: string) => yaml.slice(0, at % (yaml.length + 1)) + yaml.slice((at % (yaml.length + 1)) + length)) },
      { weight: 8, arbitrary: fc.constantFrom('&x ', '*x', '<<: *x\n', '!!binary ', '!!str ', '? ', '- ', ': ', '{', '[', '\t', '---\n', '%YAML 1.1\n', '\u0000', '\ufffd', '.nan', '-.inf', '0x7fffffffffffffffff').chain((token) =>
        fc.nat().map((at) => (yaml: string) => yaml.slice(0, at % (yaml.length + 1)) + token + yaml.slice(at % (yaml.length + 1))),
      ) },
      // The expensive ones, less often.
      { weight: 1, arbitrary: fc.constant((yaml: string) => `${ALIAS_BOMB}\n${yaml}`) },
      { weight: 1, arbitrary: fc.integer({ min: 65, max: 600 }).map((depth) => (yaml: string) => `${yaml}\nx: ${'['.repeat(depth)}${']'.repeat(depth)}\n`) },
      { weight: 1, arbitrary: fc.integer({ min: 50, max: 150 }).map((depth) => (yaml: string) => `${yaml}\nparameters:\n${Array.from({ length: depth }, (_, i) => `${' '.repeat(i + 1)}a:`).join('\n')} 1\n`) },
    )
    fc.assert(
      fc.property(validConfig(refs), fc.array(mangle, { minLength: 1, maxLength: 3 }), (config, edits) => {
        const text = edits.reduce((yaml, edit) => edit(yaml), stringify(config))
        let parsed
        try {
          parsed = parseMergeConfig(text)
        } catch (error) {
          if (!(error instanceof MergeConfigError)) throw error
          expect(error.message.length).toBeGreaterThan(3)
          return
        }
        // Whatever was accepted is a config the validator accepts again unchanged.
        expect(validateMergeConfig(structuredClone(parsed))).toEqual(parsed)
      }),
      settings,
    )
  }, fuzzTimeout(settings, 10))
})
