#!/usr/bin/env node
// Prints a comparison table (Markdown) from labelled client results.
//
//   node compare.mjs RESULTS.tsv
//
// Each line: LABEL <TAB> the JSON line client.mjs printed last. The label `oidc-provider`
// is the reference; every other label is compared with it, auth method by auth method.

import * as fs from 'node:fs';

if (process.argv.length !== 3) {
  console.error('usage: node compare.mjs RESULTS.tsv');
  process.exit(2);
}
const rows = fs.readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).map((line) => {
  const tab = line.indexOf('\t');
  if (tab < 0) throw new Error(`not LABEL<TAB>JSON: ${line}`);
  return { label: line.slice(0, tab), ...JSON.parse(line.slice(tab + 1)) };
});
if (!rows.length) {
  console.log('(no results)');
  process.exit(0);
}

const f = (x, d = 1) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '–');
console.log('| OP | client auth | flow p50 ms | flow p90 ms | flow p99 ms | tokens/s | token p50 ms | token p99 ms '
  + '| OP CPU ms/flow | OP CPU ms/token | client CPU ms/token | failures |');
console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
for (const r of rows) {
  const failures = r.ok ? 'none' : (r.failed_step ? `failed: ${r.failed_step}` : JSON.stringify(r.errors));
  console.log(`| ${r.label} | ${r.auth} | ${f(r.latency_ms?.p50, 2)} | ${f(r.latency_ms?.p90, 2)} | ${f(r.latency_ms?.p99, 2)} `
    + `| ${f(r.token_per_s, 0)} | ${f(r.token_latency_ms?.p50)} | ${f(r.token_latency_ms?.p99)} `
    + `| ${f(r.op_cpu_ms_per_flow, 2)} | ${f(r.op_cpu_ms_per_token, 2)} | ${f(r.client_cpu_ms_per_token, 2)} | ${failures} |`);
}

const reference = rows.filter((r) => r.label === 'oidc-provider' && r.ok);
const others = rows.filter((r) => r.label !== 'oidc-provider' && r.ok);
if (reference.length && others.length) {
  console.log();
  console.log('| OP | client auth | tokens/s ÷ reference | flow p50 ÷ reference | reference OP CPU per token ÷ this OP\'s |');
  console.log('|---|---|---:|---:|---:|');
  for (const r of others) {
    const ref = reference.find((x) => x.auth === r.auth);
    if (!ref) continue;
    const cpu = ref.op_cpu_ms_per_token && r.op_cpu_ms_per_token ? ref.op_cpu_ms_per_token / r.op_cpu_ms_per_token : NaN;
    console.log(`| ${r.label} | ${r.auth} | ${f(r.token_per_s / ref.token_per_s, 2)}× `
      + `| ${f(r.latency_ms.p50 / ref.latency_ms.p50, 2)}× | ${f(cpu, 2)}× |`);
  }
}
