// reflection_node: grpc-reflection-js (v1alpha) discovers keel-echo's services and
// descriptors, then calls Echo using only those descriptors (no .proto file).
// env: ECHO_ADDR (started by reflection_node_test.sh).
'use strict';

const path = require('path');
const kt = require(path.join(__dirname, '..', 'testlib', 'keeltest.js'));

const grpc = kt.npm('@grpc/grpc-js');
const reflection = kt.npm('grpc-reflection-js');
const S = grpc.status;
const T = 10000;

async function main() {
  const c = new kt.Checks('reflection_node');
  const addr = kt.need('ECHO_ADDR');
  const rc = new reflection.Client(addr, grpc.credentials.createInsecure());

  let services = [];
  await c.run('listServices', async () => {
    services = await rc.listServices();
    console.log(`services: ${JSON.stringify(services)}`);
    for (const s of ['keel.echo.v1.Echo', 'grpc.health.v1.Health',
                     'grpc.reflection.v1alpha.ServerReflection']) {
      c.ok(`listServices includes ${s}`, services.includes(s), JSON.stringify(services));
    }
    c.ok('listServices includes grpc.reflection.v1.ServerReflection',
         services.includes('grpc.reflection.v1.ServerReflection'), JSON.stringify(services));
    c.eq('listServices has no duplicates', services.length, new Set(services).size);
  });

  let root = null;
  await c.run('fileContainingSymbol keel.echo.v1.Echo', async () => {
    root = await rc.fileContainingSymbol('keel.echo.v1.Echo');
    root.resolveAll();
    const svc = root.lookupService('keel.echo.v1.Echo');
    const want = {
      Echo: ['EchoRequest', 'EchoResponse', false, false],
      Expand: ['ExpandRequest', 'EchoResponse', false, true],
      Collect: ['EchoRequest', 'CollectResponse', true, false],
      Chat: ['EchoRequest', 'EchoResponse', true, true],
      Stats: ['StatsRequest', 'StatsResponse', false, false],
    };
    c.eq('Echo service methods', Object.keys(svc.methods).sort(), Object.keys(want).sort());
    for (const [name, [req, res, cs, ss]] of Object.entries(want)) {
      const m = svc.methods[name];
      if (!m) continue;
      c.eq(`${name}: request/response descriptors and streaming flags`,
           [m.resolvedRequestType && m.resolvedRequestType.fullName,
            m.resolvedResponseType && m.resolvedResponseType.fullName,
            !!m.requestStream, !!m.responseStream],
           [`.keel.echo.v1.${req}`, `.keel.echo.v1.${res}`, cs, ss]);
    }
    const er = root.lookupType('keel.echo.v1.EchoRequest');
    c.eq('EchoRequest fields (name:id:type) from reflection',
         er.fieldsArray.map((f) => `${f.name}:${f.id}:${f.type}`),
         ['message:1:string', 'delay_ms:2:uint32', 'status_code:3:uint32',
          'status_message:4:string', 'payload:5:bytes']);
  });

  await c.run('call Echo through reflected descriptors', async () => {
    if (!root) return c.fail('call Echo through reflected descriptors', 'no descriptors');
    const svc = root.lookupService('keel.echo.v1.Echo');
    const cl = kt.clientFromService(svc, addr);
    const r = await kt.unary(cl, 'Echo', {message: 'via reflection', payload: Buffer.from('pp')},
                             {metadata: {'x-echo': 'refl'}});
    c.eq('Echo via reflection: message', r.response.message, 'via reflection');
    c.ok('Echo via reflection: payload', Buffer.from(r.response.payload).toString() === 'pp');
    c.eq('Echo via reflection: echo_metadata', r.response.echo_metadata, 'refl');
    const s = await kt.readStream(cl.Expand({message: 'e', count: 3},
                                            {deadline: Date.now() + T}));
    c.eq('Expand via reflection: sequences', s.messages.map((m) => m.sequence), [0, 1, 2]);
    await c.code('Echo via reflection: status passthrough',
                 kt.unary(cl, 'Echo', {status_code: S.NOT_FOUND, status_message: 'nope'}),
                 S.NOT_FOUND, 'nope');
    cl.close();
  });

  await c.run('health through reflected descriptors', async () => {
    const hroot = await rc.fileContainingSymbol('grpc.health.v1.Health');
    hroot.resolveAll();
    const svc = hroot.lookupService('grpc.health.v1.Health');
    c.eq('Health methods', Object.keys(svc.methods).sort(), ['Check', 'Watch']);
    const h = kt.clientFromService(svc, addr);
    const r = await kt.unary(h, 'Check', {service: ''});
    c.eq('Health.Check via reflection -> SERVING', r.response.status, 1);
    h.close();
  });

  await c.run('fileByFilename and unknown symbols', async () => {
    const froot = await rc.fileByFilename('keel/echo/v1/echo.proto');
    c.ok('fileByFilename keel/echo/v1/echo.proto resolves the Echo service',
         !!froot.lookup('keel.echo.v1.Echo'));
    const mroot = await rc.fileContainingSymbol('keel.echo.v1.CollectResponse');
    c.ok('fileContainingSymbol of a message type', !!mroot.lookup('keel.echo.v1.CollectResponse'));
    let rejected = false;
    try {
      await rc.fileContainingSymbol('keel.nope.v1.Nothing');
    } catch (e) {
      rejected = true;
    }
    c.ok('fileContainingSymbol of an unknown symbol is an error', rejected);
  });

  c.finish();
}

main().catch((e) => {
  console.log(`FAIL: reflection_node crashed: ${e && e.stack ? e.stack : e}`);
  process.exitCode = 1;
});
