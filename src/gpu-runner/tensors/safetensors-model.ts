import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { SafetensorsError, type TensorInfo } from '../../shared/safetensors-header.ts'
import { parseSafetensorsIndex, SAFETENSORS_INDEX_NAME } from '../../shared/safetensors-index.ts'
import { openSafetensorsFile, type SafetensorsFile } from './safetensors-file.ts'

// A model directory: one `model.safetensors`, or shards listed by
// `model.safetensors.index.json`. The index and the shards' own headers must
// agree exactly, tensor by tensor.

export type ModelTensor = TensorInfo & { file: SafetensorsFile }

export type SafetensorsModel = {
  dir: string
  tensors: Map<string, ModelTensor>
  files: SafetensorsFile[]
  close(): Promise<void>
}

const exists = (path: string) => stat(path).then((info) => info.isFile(), () => false)

export async function openSafetensorsModel(dir: string): Promise<SafetensorsModel> {
  const indexPath = join(dir, SAFETENSORS_INDEX_NAME)
  const files: SafetensorsFile[] = []
  const close = async () => {
    await Promise.all(files.map((file) => file.close()))
  }
  try {
    const tensors = new Map<string, ModelTensor>()
    if (await exists(indexPath)) {
      const index = parseSafetensorsIndex(await readFile(indexPath, 'utf8'))
      for (const shard of index.shards) files.push(await openSafetensorsFile(join(dir, shard)))
      for (const [name, shard] of index.weightMap) {
        const file = files[index.shards.indexOf(shard)]!
        const info = file.tensors.get(name)
        if (!info) throw new SafetensorsError(`${indexPath}: tensor ${name} is not in ${shard}`)
        tensors.set(name, { ...info, file })
      }
      for (const file of files) {
        for (const name of file.tensors.keys()) {
          if (tensors.get(name)?.file !== file) throw new SafetensorsError(`${file.path}: tensor ${name} is not listed for this shard in ${SAFETENSORS_INDEX_NAME}`)
        }
      }
    } else {
      const single = join(dir, 'model.safetensors')
      if (!(await exists(single))) throw new SafetensorsError(`${dir}: neither model.safetensors nor ${SAFETENSORS_INDEX_NAME} found`)
      const file = await openSafetensorsFile(single)
      files.push(file)
      for (const info of file.header.tensors) tensors.set(info.name, { ...info, file })
    }
    return { dir, tensors, files, close }
  } catch (error) {
    await close()
    throw error
  }
}
