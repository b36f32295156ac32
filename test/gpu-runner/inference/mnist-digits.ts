import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { readMnistDigits } from '../../../scripts/mnist/mnist-digits.ts'

// The digit classifier that scripts/mnist/train-mlp.py trained, and the real
// digits it was trained and tested on.
const ROOT = join(import.meta.dirname, '..', '..', '..')
export const MODEL_PATH = join(ROOT, 'assets', 'models', 'mnist-mlp.onnx')
export const MODEL_META = JSON.parse(readFileSync(join(ROOT, 'assets', 'models', 'mnist-mlp.json'), 'utf8')) as {
  labels: string[]
  test_accuracy: number
  test_indices: number[]
}

let digits: { pixels: Float32Array[]; labels: number[] } | undefined

// The digits as float32, in the order the model's `test_indices` count them.
export function loadDigits() {
  if (digits) return digits
  const { rows, labels } = readMnistDigits()
  digits = { pixels: rows.map((row) => Float32Array.from(row)), labels }
  return digits
}
