// reflection_node: grpc-reflection-js discovers every keel.api.v1 service of
// keel-apiserver and calls Pods (Create, List, Watch) knowing nothing but the
// reflection answers. The expected services and methods are read from
// services.proto's text (the test's only use of it), so a service added there
// and not served fails here.
// env (set by reflection_node_test.sh): APISERVER_ADDR, SERVICES_PROTO.
'use strict';

const fs = require('fs');
const path = require('path');
const kt = require(path.join(__dirname, '..', 'testlib', 'keeltest.js'));

const grpc = kt.npm('@grpc/grpc-js');
const reflection = kt.npm('grpc-reflection-js');
const T = 10000;

// {Service: [methods]} from services.proto's text.
function servicesFromProto(file) {
  const text = fs.readFileSync(file, 'utf8').replace(/\/\/.*$/mg, '');
  const out = {};
  const re = /service\s+(\w+)\s*\{([^}]*)\}/g;
  let m;
  while ((m = re.exec(text))) {
    out[m[1]] = [...m[2].matchAll(/rpc\s+(\w+)\s*\(/g)].map((x) => x[1]).sort();
    for (const r of m[2].matchAll(/rpc\s+(\w+)\s*\(\s*(stream\s+)?[\w.]+\s*\)\s*returns\s*\(\s*(stream\s+)?/g)) {
      streaming[`${m[1]}.${r[1]}`] = [!!r[2], !!r[3]];
    }
  }
  return out;
}

// "Service.Method" -> [requestStream, responseStream], as services.proto declares them.
const streaming = {};

async function main() {
  const c = new kt.Checks('apiserver reflection_node');
  const addr = kt.need('APISERVER_ADDR');
  const want = servicesFromProto(kt.need('SERVICES_PROTO'));
  const rc = new reflection.Client(addr, grpc.credentials.createInsecure());
  c.ok('services.proto declares the nine kinds\' services', Object.keys(want).length === 9,
       JSON.stringify(Object.keys(want)));

  await c.run('listServices', async () => {
    const services = await rc.listServices();
    console.log(`services: ${JSON.stringify(services)}`);
    for (const s of Object.keys(want)) {
      c.ok(`listServices includes keel.api.v1.${s}`, services.includes(`keel.api.v1.${s}`));
    }
    for (const s of ['grpc.health.v1.Health', 'grpc.reflection.v1alpha.ServerReflection',
                     'grpc.reflection.v1.ServerReflection']) {
      c.ok(`listServices includes ${s}`, services.includes(s));
    }
    c.eq('listServices: keel.api.v1 services are exactly those of services.proto',
         services.filter((s) => s.startsWith('keel.api.v1.')).sort(),
         Object.keys(want).map((s) => `keel.api.v1.${s}`).sort());
  });

  await c.run('every service resolves with its methods', async () => {
    for (const [s, methods] of Object.entries(want)) {
      const root = await rc.fileContainingSymbol(`keel.api.v1.${s}`);
      root.resolveAll();
      const svc = root.lookupService(`keel.api.v1.${s}`);
      c.eq(`${s}: methods from reflection`, Object.keys(svc.methods).sort(), methods);
      const w = svc.methods.Watch;
      c.ok(`${s}: Watch is server-streaming`, w && w.responseStream && !w.requestStream);
      const kinds = Object.entries(svc.methods).map(([n, m]) => [n, [!!m.requestStream, !!m.responseStream]]);
      c.eq(`${s}: every method streams as services.proto declares (Pods/Exec bidi, Pods/Log server)`,
           Object.fromEntries(kinds), Object.fromEntries(kinds.map(([n]) => [n, streaming[`${s}.${n}`]])));
      c.ok(`${s}: Get takes keel.api.v1.GetRequest`,
           svc.methods.Get.resolvedRequestType.fullName === '.keel.api.v1.GetRequest',
           svc.methods.Get.resolvedRequestType.fullName);
    }
  });

  await c.run('Pods through reflected descriptors only', async () => {
    const root = await rc.fileContainingSymbol('keel.api.v1.Pods');
    root.resolveAll();
    const pods = kt.clientFromService(root.lookupService('keel.api.v1.Pods'), addr);
    // protobufjs' Root.fromDescriptor keeps a map field as what the descriptor
    // says it is on the wire: repeated XEntry {key, value}.
    const obj = {metadata: {name: 'refl-1', namespace: 'default', labels: [{key: 'via', value: 'reflection'}]},
                 spec: {containers: [{name: 'web', image: 'nginx:1.25'}]}};
    const made = (await kt.unary(pods, 'Create', obj)).response;
    c.ok('Create via reflection: resourceVersion', /^\d+$/.test(made.metadata.resource_version),
         JSON.stringify(made.metadata));
    const lst = (await kt.unary(pods, 'List', {namespace: 'default', label_selector: 'via=reflection'})).response;
    c.eq('List via reflection: the pod', lst.items.map((p) => p.metadata.name), ['refl-1']);
    c.eq('List via reflection: kind and listed labels', [lst.kind, lst.items[0] && lst.items[0].metadata.labels],
         ['PodList', [{key: 'via', value: 'reflection'}]]);
    c.eq('List via reflection: defaults came back', lst.items[0] && lst.items[0].spec.restart_policy, 'Always');
    const s = await kt.readStream(pods.Watch({namespace: 'default', label_selector: 'via=reflection',
                                              timeout_seconds: 1}, {deadline: Date.now() + T}));
    c.eq('Watch via reflection: ADDED refl-1 then OK at timeout_seconds',
         [s.messages.map((e) => [e.type, e.object.metadata.name]), s.status.code],
         [[['ADDED', 'refl-1']], grpc.status.OK]);
    await kt.unary(pods, 'Delete', {namespace: 'default', name: 'refl-1'});
    pods.close();
  });

  await c.run('unknown symbols', async () => {
    let rejected = false;
    try {
      await rc.fileContainingSymbol('keel.api.v1.Nothing');
    } catch (e) {
      rejected = true;
    }
    c.ok('fileContainingSymbol keel.api.v1.Nothing is an error', rejected);
  });

  c.finish();
}

main().catch((e) => {
  console.log(`FAIL: reflection_node crashed: ${e && e.stack ? e.stack : e}`);
  process.exitCode = 1;
});
