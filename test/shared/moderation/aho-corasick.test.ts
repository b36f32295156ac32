import { describe, expect, it } from 'vitest'
import { createPhraseMatcher } from '../../../src/shared/moderation/aho-corasick.ts'

describe('createPhraseMatcher', () => {
  const matcher = createPhraseMatcher([
    { text: 'he', value: 'he' },
    { text: 'she', value: 'she' },
    { text: 'hers', value: 'hers' },
    { text: 'his', value: 'his' },
    { text: 'ass', value: 'ass', boundaryStart: true, boundaryEnd: false },
    { text: '恨', value: 'hate-zh' },
  ])

  it('finds overlapping phrases as whole words in one pass', () => {
    const found = matcher.findAll('she said hers is his and he agreed')
    expect(found.map((m) => m.value)).toEqual(['she', 'hers', 'his', 'he'])
    expect(found[1]).toEqual({ start: 9, end: 13, value: 'hers' })
  })

  it('honours per-phrase boundaries', () => {
    expect(matcher.findAll('assess class asses').map((m) => [m.value, m.start])).toEqual([
      ['ass', 0],
      ['ass', 13],
    ])
  })

  it('matches inside words for scripts written without spaces', () => {
    expect(matcher.findAll('我恨女人').map((m) => m.value)).toEqual(['hate-zh'])
  })

  it('finds nothing with no phrases', () => {
    expect(createPhraseMatcher([]).findAll('anything')).toEqual([])
  })
})
