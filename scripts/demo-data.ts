// A small but real safetensors file for the demo model: two F32 tensors with
// fixed values, laid out as the format requires (8-byte little-endian header
// length, JSON header padded with spaces to 8 bytes, then the data).
export function demoSafetensors(): Uint8Array {
  const weight = Float32Array.from({ length: 16 }, (_, i) => Math.sin(i + 1))
  const bias = Float32Array.from({ length: 4 }, (_, i) => i / 4)
  const header = {
    __metadata__: { format: 'pt', source: 'moat demo' },
    'linear.bias': { dtype: 'F32', shape: [4], data_offsets: [0, bias.byteLength] },
    'linear.weight': { dtype: 'F32', shape: [4, 4], data_offsets: [bias.byteLength, bias.byteLength + weight.byteLength] },
  }
  let json = JSON.stringify(header)
  json += ' '.repeat((8 - (json.length % 8)) % 8)
  const headerBytes = new TextEncoder().encode(json)
  const out = new Uint8Array(8 + headerBytes.length + bias.byteLength + weight.byteLength)
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true)
  out.set(headerBytes, 8)
  out.set(new Uint8Array(bias.buffer), 8 + headerBytes.length)
  out.set(new Uint8Array(weight.buffer), 8 + headerBytes.length + bias.byteLength)
  return out
}
