// node_interop: @grpc/grpc-js + @grpc/proto-loader (clients nobody here wrote)
// against keel-apiserver. The API is built from proto/keel/api/v1/*.proto with
// google/protobuf from /usr/include, as a node client of Keel would build it.
// env (set by node_interop_test.sh): APISERVER_ADDR, SERVICES_PROTO (the path
// of keel/api/v1/services.proto; its import root is derived).
'use strict';

const path = require('path');
const kt = require(path.join(__dirname, '..', 'testlib', 'keeltest.js'));

const grpc = kt.npm('@grpc/grpc-js');
const protoLoader = kt.npm('@grpc/proto-loader');
const S = grpc.status;
const T = 10000;
const IMPORT = 'keel/api/v1/services.proto';

function loadApi() {
  const file = path.resolve(kt.need('SERVICES_PROTO'));
  if (!file.endsWith(IMPORT)) throw new Error(`${file} does not end with ${IMPORT}`);
  const root = file.slice(0, file.length - IMPORT.length);
  const def = protoLoader.loadSync(IMPORT, {
    includeDirs: [root, '/usr/include'],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(def).keel.api.v1;
}

function pod(name, extra = {}) {
  return {
    metadata: {name, namespace: 'default', labels: {app: 'js', ...(extra.labels || {})}},
    spec: {containers: [{name: 'web', image: extra.image === undefined ? 'nginx:1.25' : extra.image,
                         ports: [{container_port: 80}]}],
           node_name: extra.node || ''},
  };
}

// Reads a watch until pred(events) or the stream ends; cancels it.
async function collect(call, pred, ms = T) {
  const events = [];
  let status = null;
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    call.on('data', (ev) => {
      events.push(ev);
      if (pred(events)) { clearTimeout(timer); resolve(); }
    });
    call.on('status', (s) => { status = s; clearTimeout(timer); resolve(); });
    call.on('error', () => {});
  });
  call.cancel();
  return {events, status};
}

async function main() {
  const c = new kt.Checks('apiserver node_interop');
  const api = loadApi();
  const addr = kt.need('APISERVER_ADDR');
  const cred = grpc.credentials.createInsecure();
  const Pods = new api.Pods(addr, cred);
  const Deployments = new api.Deployments(addr, cred);
  const Namespaces = new api.Namespaces(addr, cred);
  const Leases = new api.Leases(addr, cred);

  await c.run('proto-loader sees every service', async () => {
    const names = Object.keys(api).filter((k) => api[k] && api[k].service);
    c.eq('services from the .proto files', names.sort(),
         ['Deployments', 'EndpointsService', 'Events', 'Leases', 'Namespaces', 'Nodes', 'Pods', 'ReplicaSets',
          'Services']);
  });

  let created = null;
  await c.run('CRUD', async () => {
    const ns = (await kt.unary(Namespaces, 'Get', {name: 'default'})).response;
    c.eq('Namespaces/Get default: Active', ns.status.phase, 'Active');
    created = (await kt.unary(Pods, 'Create', pod('js-1'))).response;
    c.ok('Create: uid', created.metadata.uid.length === 36, created.metadata.uid);
    c.ok('Create: resourceVersion', /^\d+$/.test(created.metadata.resource_version),
         created.metadata.resource_version);
    c.eq('Create: generation (int64 as Number)', created.metadata.generation, 1);
    c.ok('Create: creationTimestamp.seconds', created.metadata.creation_timestamp.seconds > 1600000000);
    c.eq('Create: defaults (restartPolicy, phase)', [created.spec.restart_policy, created.status.phase],
         ['Always', 'Pending']);
    c.eq('Create: labels map', created.metadata.labels, {app: 'js'});
    await c.code('Create again -> ALREADY_EXISTS', kt.unary(Pods, 'Create', pod('js-1')), S.ALREADY_EXISTS,
                 'pods "js-1" already exists');
    const got = (await kt.unary(Pods, 'Get', {namespace: 'default', name: 'js-1'})).response;
    c.eq('Get: same resourceVersion', got.metadata.resource_version, created.metadata.resource_version);
    await c.code('Get missing -> NOT_FOUND', kt.unary(Pods, 'Get', {namespace: 'default', name: 'nope'}),
                 S.NOT_FOUND, 'pods "nope" not found');
    const lst = (await kt.unary(Pods, 'List', {namespace: 'default', label_selector: 'app in (js)'})).response;
    c.eq('List with a set-based selector', lst.items.map((p) => p.metadata.name), ['js-1']);
    c.eq('List kind', lst.kind, 'PodList');
    try {
      await kt.unary(Pods, 'Create', pod('js-bad', {image: ''}));
      c.fail('invalid pod -> INVALID_ARGUMENT', 'call succeeded');
    } catch (e) {
      c.eq('invalid pod -> INVALID_ARGUMENT', e.code, S.INVALID_ARGUMENT);
      c.ok('...naming the field path', /spec\.containers\[0\]\.image: Required value/.test(e.details), e.details);
    }
    await c.code('invalid pod was not written', kt.unary(Pods, 'Get', {namespace: 'default', name: 'js-bad'}),
                 S.NOT_FOUND);
  });

  await c.run('Update, Watch, Delete', async () => {
    if (!created) return c.fail('Update, Watch, Delete', 'no pod');
    const w = Pods.Watch({namespace: 'default', field_selector: 'metadata.name=js-1',
                          resource_version: created.metadata.resource_version}, {deadline: Date.now() + T});
    const upd = JSON.parse(JSON.stringify(created));
    upd.metadata.labels.tier = 'fe';
    const after = (await kt.unary(Pods, 'Update', upd)).response;
    c.ok('Update: resourceVersion moved', Number(after.metadata.resource_version) >
         Number(created.metadata.resource_version));
    await c.code('Update with a stale resourceVersion -> FAILED_PRECONDITION', kt.unary(Pods, 'Update', upd),
                 S.FAILED_PRECONDITION);
    const st = JSON.parse(JSON.stringify(after));
    st.status.phase = 'Running';
    const after2 = (await kt.unary(Pods, 'UpdateStatus', st)).response;
    c.eq('UpdateStatus: phase Running', after2.status.phase, 'Running');
    const del = (await kt.unary(Pods, 'Delete', {namespace: 'default', name: 'js-1'})).response;
    const r = await collect(w, (evs) => evs.length >= 3);
    c.eq('Watch: MODIFIED, MODIFIED, DELETED at the revisions the writes returned',
         r.events.map((e) => [e.type, e.object.metadata.resource_version]),
         [['MODIFIED', after.metadata.resource_version], ['MODIFIED', after2.metadata.resource_version],
          ['DELETED', del.metadata.resource_version]]);
  });

  await c.run('Watch timeout_seconds and deadlines', async () => {
    const t0 = Date.now();
    const s = await kt.readStream(Pods.Watch({namespace: 'default', timeout_seconds: 1},
                                             {deadline: Date.now() + T}));
    c.eq('Watch with timeout_seconds=1 ends with OK', s.status.code, S.OK);
    c.ok('...after about a second', Date.now() - t0 >= 900, Date.now() - t0);
    const d = await kt.readStream(Pods.Watch({namespace: 'default'}, {deadline: Date.now() + 300}));
    c.eq('Watch past its deadline -> DEADLINE_EXCEEDED', d.status.code, S.DEADLINE_EXCEEDED);
  });

  await c.run('Bind', async () => {
    await kt.unary(Pods, 'Create', pod('js-bind'));
    const b = (await kt.unary(Pods, 'Bind', {metadata: {name: 'js-bind', namespace: 'default'},
                                              target: {kind: 'Node', name: 'n1'}})).response;
    c.eq('Bind: spec.nodeName', b.spec.node_name, 'n1');
    await kt.unary(Pods, 'Delete', {namespace: 'default', name: 'js-bind', grace_period_seconds: {value: 0}});
  });

  await c.run('Deployments and Scale (wrappers)', async () => {
    const dep = {
      metadata: {name: 'js-dep', namespace: 'default'},
      spec: {replicas: {value: 2}, selector: {match_labels: {app: 'js'}},
             template: {metadata: {labels: {app: 'js'}}, spec: {containers: [{name: 'web', image: 'nginx:1.25'}]}}},
    };
    const d = (await kt.unary(Deployments, 'Create', dep)).response;
    c.eq('Deployment: replicas 2 (Int32Value)', d.spec.replicas.value, 2);
    c.eq('Deployment: strategy defaulted', d.spec.strategy.type, 'RollingUpdate');
    const sc = (await kt.unary(Deployments, 'GetScale', {namespace: 'default', name: 'js-dep'})).response;
    c.eq('GetScale: replicas and selector', [sc.spec.replicas, sc.status.selector], [2, 'app=js']);
    sc.spec.replicas = 4;
    const sc2 = (await kt.unary(Deployments, 'UpdateScale', sc)).response;
    c.eq('UpdateScale: 4', sc2.spec.replicas, 4);
    const d2 = (await kt.unary(Deployments, 'Get', {namespace: 'default', name: 'js-dep'})).response;
    c.eq('Deployment after UpdateScale: replicas 4, generation 2', [d2.spec.replicas.value, d2.metadata.generation],
         [4, 2]);
    await kt.unary(Deployments, 'Delete', {namespace: 'default', name: 'js-dep'});
  });

  await c.run('Lease (coordination.k8s.io/v1)', async () => {
    const l = (await kt.unary(Leases, 'Create', {metadata: {name: 'js-lease', namespace: 'default'},
                                                 spec: {holder_identity: {value: 'node-js'},
                                                        lease_duration_seconds: {value: 15}}})).response;
    c.eq('Lease: apiVersion and holder', [l.api_version, l.spec.holder_identity.value],
         ['coordination.k8s.io/v1', 'node-js']);
    await kt.unary(Leases, 'Delete', {namespace: 'default', name: 'js-lease'});
  });

  await c.run('unknown method', async () => {
    const raw = new grpc.Client(addr, cred);
    const r = await new Promise((resolve) => {
      raw.makeUnaryRequest('/keel.api.v1.Pods/Explode', (x) => x, (x) => x, Buffer.alloc(0),
                           (err) => resolve(err));
    });
    c.eq('an unknown method -> UNIMPLEMENTED', r && r.code, S.UNIMPLEMENTED);
    raw.close();
  });

  for (const cl of [Pods, Deployments, Namespaces, Leases]) cl.close();
  c.finish();
}

main().catch((e) => {
  console.log(`FAIL: node_interop crashed: ${e && e.stack ? e.stack : e}`);
  process.exitCode = 1;
});
