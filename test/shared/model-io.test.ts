import { describe, expect, it } from 'vitest'
import { declaredInputMismatch, flattenInstances, rowDims } from '../../src/shared/model-io.ts'

const pixels = [{ name: 'pixels', type: 'float32', shape: ['batch', 784] as (string | number)[] }]

describe('declaredInputMismatch', () => {
  it('accepts matching or absent declarations', () => {
    expect(declaredInputMismatch(null, pixels)).toBeNull()
    expect(declaredInputMismatch({ shape: [-1, 784], dtype: 'float32' }, pixels)).toBeNull()
    expect(declaredInputMismatch({ shape: [1, 784], dtype: 'float32' }, pixels)).toBeNull()
  })

  it('names what differs', () => {
    expect(declaredInputMismatch({ shape: [-1, 785], dtype: 'float32' }, pixels)).toMatch(/declared input shape \[-1, 785\].*\[batch, 784\]/)
    expect(declaredInputMismatch({ shape: [-1, 28, 28], dtype: 'float32' }, pixels)).toMatch(/shape/)
    expect(declaredInputMismatch({ shape: [-1, 784], dtype: 'int64' }, pixels)).toMatch(/dtype int64/)
  })
})

describe('flattenInstances', () => {
  it('flattens rows of the right shape', () => {
    expect(flattenInstances([[1, 2], [3, 4]], [2], 10)).toEqual({ ok: true, data: [1, 2, 3, 4], rows: 2 })
    expect(flattenInstances([[[1, 2], [3, 4]]], [2, 2], 10)).toEqual({ ok: true, data: [1, 2, 3, 4], rows: 1 })
  })

  it('refuses wrong lengths, non-numbers, NaN and Infinity, naming the place', () => {
    expect(flattenInstances([[1, 2], [3]], [2], 10)).toMatchObject({ ok: false, status: 400, param: 'instances.1' })
    expect(flattenInstances([[1, 'x']], [2], 10)).toMatchObject({ ok: false, param: 'instances.0.1' })
    expect(flattenInstances([[1, Number.NaN]], [2], 10)).toMatchObject({ ok: false, param: 'instances.0.1' })
    expect(flattenInstances([[1, Number.POSITIVE_INFINITY]], [2], 10, true)).toMatchObject({ ok: true })
    expect(flattenInstances([], [2], 10)).toMatchObject({ ok: false, status: 400 })
    expect(flattenInstances('rows', [2], 10)).toMatchObject({ ok: false, status: 400 })
  })

  it('answers 413 past the row limit', () => {
    expect(flattenInstances(Array(11).fill([1, 2]), [2], 10)).toMatchObject({ ok: false, status: 413 })
  })
})

describe('rowDims', () => {
  it('takes fixed dims from the model and symbolic ones from the declaration', () => {
    expect(rowDims(pixels[0]!)).toEqual([784])
    expect(rowDims({ name: 'x', type: 'float32', shape: ['n', 'c'] }, { shape: [-1, 3] })).toEqual([3])
    expect(rowDims({ name: 'x', type: 'float32', shape: ['n', 'c'] })).toBeNull()
  })
})
