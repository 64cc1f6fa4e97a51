// Drive @flashbots/ethers-provider-bundle (ethers 6), unchanged, against a blockspace server.
//
//   node ethers_provider_client.mjs MODE URL AUTH_KEY SENDER_KEY CHAIN_ID
//
// MODE "bundles": the generic provider is a JsonRpcProvider on our URL with a static network
// and no batching (see docs/flashbots-compat.md). Sends three bundles to the open slot
// (eth_blockNumber + 1): A with sendBundle (one entry signed by the client, one pre-signed),
// B with sendRawBundle, C with sendBundle and a replacementUuid, then cancelled. Asks for A's
// stats and tries simulate(). Prints one JSON report, including every JSON-RPC method each
// side sent: "node" (the generic provider) and "relay" (the Flashbots provider).
//
// MODE "default-provider": a JsonRpcProvider built the way the package's README builds one,
// `new JsonRpcProvider(url)`, asks for the block number and submits one bundle.
import { FetchRequest, JsonRpcProvider, Network, Wallet } from 'ethers'
import { FlashbotsBundleProvider } from '@flashbots/ethers-provider-bundle'
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'

const [mode, url, authKey, senderKey, chainText] = process.argv.slice(2)
const chainId = Number(chainText)
const GWEI = 10n ** 9n
const ATTEMPTS = 3
const SLOT_CLOSED = -32030 // our stable JSON-RPC code for slot_closed

function recorded(sink) {
  const request = new FetchRequest(url)
  request.preflightFunc = async (req) => {
    const body = JSON.parse(Buffer.from(req.body).toString('utf8'))
    sink.push(Array.isArray(body) ? body.map((r) => r.method) : body.method)
    return req
  }
  return request
}

function versions() {
  // node_modules sits beside this script (the test links it there)
  const read = (name) => JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url), 'utf8')).version
  return { ethers: read('ethers'), '@flashbots/ethers-provider-bundle': read('@flashbots/ethers-provider-bundle') }
}

const auth = new Wallet(authKey)
const sender = new Wallet(senderKey)
const tx = (nonce) => ({
  chainId,
  type: 2,
  nonce,
  gasLimit: 21000,
  maxFeePerGas: 2n * GWEI,
  maxPriorityFeePerGas: GWEI,
  to: sender.address,
  value: 0
})

// Send to the open slot; if it closed between eth_blockNumber and the send, try the next.
let retries = 0
async function submit(provider, send) {
  for (let attempt = 0; ; attempt++, retries++) {
    const target = (await provider.getBlockNumber()) + 1
    const res = await send(target)
    if ('error' in res && res.error.code === SLOT_CLOSED && attempt + 1 < ATTEMPTS) {
      // ethers caches getBlockNumber for 250 ms: wait that out to see the new head
      await new Promise((resolve) => setTimeout(resolve, 300))
      continue
    }
    if ('error' in res) throw new Error(`relay refused the bundle: ${JSON.stringify(res.error)}`)
    return { target, res }
  }
}

async function bundles() {
  const node = []
  const relay = []
  const network = Network.from(chainId)
  const provider = new JsonRpcProvider(recorded(node), network, { staticNetwork: network, batchMaxCount: 1 })
  const fb = await FlashbotsBundleProvider.create(provider, auth, recorded(relay), chainId)

  const raw1 = await sender.signTransaction(tx(1))
  const a = await submit(provider, (t) => fb.sendBundle([{ signer: sender, transaction: tx(0) }, { signedTransaction: raw1 }], t))
  const rawB = [await sender.signTransaction(tx(2))]
  const b = await submit(provider, (t) => fb.sendRawBundle(rawB, t))
  const replacementUuid = randomUUID()
  const c = await submit(provider, (t) => fb.sendBundle([{ signer: sender, transaction: tx(3) }], t, { replacementUuid }))
  const cancel = await fb.cancelBundles(replacementUuid)
  const statsA = await fb.getBundleStatsV2(a.res.bundleHash, a.target)
  const simulate = await fb.simulate(rawB, b.target)
  provider.destroy()

  const describe = ({ target, res }) => ({
    target,
    bundle_hash: res.bundleHash, // the server's answer (response.result.bundleHash)
    local_bundle_hash: FlashbotsBundleProvider.generateBundleHash(res.bundleTransactions.map((t) => t.hash)),
    txs: res.bundleTransactions.map((t) => t.signedTransaction)
  })
  return {
    versions: versions(),
    a: describe(a),
    b: describe(b),
    c: { ...describe(c), replacement_uuid: replacementUuid, cancel },
    stats_a: statsA,
    simulate,
    node_methods: node,
    relay_methods: relay,
    retries
  }
}

async function defaultProvider() {
  const node = []
  const provider = new JsonRpcProvider(recorded(node))
  try {
    const fb = await FlashbotsBundleProvider.create(provider, auth, url)
    const b = await submit(provider, async (t) => fb.sendRawBundle([await sender.signTransaction(tx(9))], t))
    return { ok: true, target: b.target, bundle_hash: b.res.bundleHash, node_methods: node }
  } catch (err) {
    return { ok: false, error: String(err?.shortMessage ?? err).slice(0, 600), node_methods: node }
  } finally {
    provider.destroy()
  }
}

// ethers retries a failed network detection forever; a hung client must still report.
const timeout = new Promise((resolve) => setTimeout(() => resolve({ ok: false, error: 'client timed out' }), 30000).unref())
const report = await Promise.race([mode === 'bundles' ? bundles() : defaultProvider(), timeout])
console.log(JSON.stringify(report, (_, v) => (typeof v === 'bigint' ? v.toString() : v)))
process.exit(0)
