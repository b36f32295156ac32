// Preloaded with --import so bin/moat.js believes it runs on Node 20 and
// takes its re-exec path. The re-executed child carries MOAT_NODE_REEXEC and
// sees its real version.
if (!process.env.MOAT_NODE_REEXEC) {
  Object.defineProperty(process.versions, 'node', { value: '20.0.0' })
  process.stderr.write(`${JSON.stringify({ pretend_node_20_pid: process.pid })}\n`)
}
