// node_interop: @grpc/grpc-js + @grpc/proto-loader (clients nobody here wrote)
// against keel-echo. The daemons are started by node_interop_test.sh; this file
// gets their addresses through the environment:
//   ECHO_PROTO HEALTH_PROTO CERTS_DIR PLAIN_ADDR UNIX_ADDR TLS_ADDR MTLS_ADDR
// PLAIN runs with --max-message-bytes=64Ki.
'use strict';

const path = require('path');
const kt = require(path.join(__dirname, '..', 'testlib', 'keeltest.js'));

const grpc = kt.npm('@grpc/grpc-js');
const S = grpc.status;
const T = 10000; // ms; client-side timeout for calls that should finish at once

async function main() {
  const c = new kt.Checks('node_interop');
  const echoPkg = kt.loadProto(kt.need('ECHO_PROTO'), 'keel/echo/v1/echo.proto');
  const healthPkg = kt.loadProto(kt.need('HEALTH_PROTO'), 'grpc/health/v1/health.proto');
  const Echo = echoPkg.keel.echo.v1.Echo;
  const Health = healthPkg.grpc.health.v1.Health;
  const certs = kt.need('CERTS_DIR');
  const cert = (n) => kt.readFile(path.join(certs, n));

  const insecure = grpc.credentials.createInsecure();
  const cl = new Echo(kt.need('PLAIN_ADDR'), insecure);
  const stats = async () => (await kt.unary(cl, 'Stats', {})).response;
  const waitStats = async (pred, ms) => {
    const end = Date.now() + ms;
    for (;;) {
      const s = await stats();
      if (pred(s) || Date.now() > end) return s;
      await kt.sleep(50);
    }
  };

  await c.run('unary', async () => {
    const payload = Buffer.from([...Array(256).keys()]);
    const r = await kt.unary(cl, 'Echo', {message: 'héllo', payload});
    c.eq('Echo: message', r.response.message, 'héllo');
    c.ok('Echo: payload (all byte values)', Buffer.compare(r.response.payload, payload) === 0,
         r.response.payload.toString('hex'));
    c.eq('Echo: no x-echo -> empty echo_metadata', r.response.echo_metadata, '');
    c.eq('Echo: status OK', r.status.code, S.OK);
  });

  await c.run('metadata', async () => {
    const r = await kt.unary(cl, 'Echo', {message: 'm'}, {metadata: {'x-echo': 'node-md'}});
    c.eq('metadata: echo_metadata = request x-echo', r.response.echo_metadata, 'node-md');
    c.eq('metadata: initial x-echo-initial', r.metadata && r.metadata.get('x-echo-initial'),
         ['node-md']);
    c.eq('metadata: trailing x-echo-trailing', r.status.metadata.get('x-echo-trailing'),
         ['node-md']);
  });

  await c.run('server streaming', async () => {
    const t0 = Date.now();
    const r = await kt.readStream(cl.Expand({message: 'x', count: 5, payload: Buffer.from('p'),
                                             interval_ms: 50},
                                            {deadline: Date.now() + T}));
    const el = Date.now() - t0;
    c.eq('Expand: status OK', r.status.code, S.OK);
    c.eq('Expand: sequences 0..4', r.messages.map((m) => m.sequence), [0, 1, 2, 3, 4]);
    c.ok('Expand: message and payload on every response',
         r.messages.every((m) => m.message === 'x' && m.payload.toString() === 'p'));
    c.ok('Expand: interval_ms respected', el >= 180, `${el} ms`);
    const big = await kt.readStream(cl.Expand({message: 'fast', count: 1000},
                                              {deadline: Date.now() + T}));
    c.ok('Expand: 1000 responses in order',
         big.messages.length === 1000 && big.messages.every((m, i) => m.sequence === i),
         big.messages.length);
  });

  await c.run('client streaming', async () => {
    const r = await new Promise((resolve, reject) => {
      const call = cl.Collect({deadline: Date.now() + T}, (err, resp) =>
        (err ? reject(err) : resolve(resp)));
      call.write({message: 'a', payload: Buffer.from('12')});
      call.write({message: 'bb'});
      call.write({message: 'ccc', payload: Buffer.from([0, 1, 2, 3])});
      call.end();
    });
    c.eq('Collect: count', r.count, 3);
    c.eq('Collect: bytes', r.bytes, 12);
    c.eq('Collect: joined', r.joined, 'a,bb,ccc');
  });

  await c.run('bidi streaming', async () => {
    const call = cl.Chat({deadline: Date.now() + T});
    const done = kt.readStream(call);
    let ok = true;
    for (let i = 0; i < 3; i++) {
      const next = kt.nextMessage(call);
      call.write({message: `m${i}`, payload: Buffer.from([i])});
      const m = await next; // answered before the next write: truly bidi
      ok = ok && m.message === `m${i}` && m.payload[0] === i && m.sequence === i;
    }
    c.ok('Chat: lock-step answers with message, payload, sequence', ok);
    call.end();
    const r = await done;
    c.eq('Chat: half-close ends the stream OK', r.status.code, S.OK);

    const call2 = cl.Chat({deadline: Date.now() + T});
    const done2 = kt.readStream(call2);
    call2.write({message: 'a'});
    call2.write({message: 'b'});
    call2.write({message: 'c', status_code: S.ABORTED, status_message: 'chat aborted on purpose'});
    const r2 = await done2;
    call2.end();
    c.eq('Chat: responses before the failing request', r2.messages.map((m) => m.message),
         ['a', 'b']);
    c.eq('Chat: status_code ends the stream with that code', r2.status.code, S.ABORTED);
    c.eq('Chat: ... and that message', r2.status.details, 'chat aborted on purpose');
  });

  await c.run('status passthrough', async () => {
    await c.code('Echo status_code=9 -> FAILED_PRECONDITION with message',
                 kt.unary(cl, 'Echo', {status_code: 9, status_message: 'precondition: x=1'}),
                 S.FAILED_PRECONDITION, 'precondition: x=1');
    await c.code('Echo status_code=16 -> UNAUTHENTICATED with message',
                 kt.unary(cl, 'Echo', {status_code: 16, status_message: 'who are you'}),
                 S.UNAUTHENTICATED, 'who are you');
  });

  await c.run('deadline', async () => {
    const before = await stats();
    const t0 = Date.now();
    await c.code('Echo delay_ms=3000 with a 300 ms deadline -> DEADLINE_EXCEEDED',
                 kt.unary(cl, 'Echo', {message: 'slow', delay_ms: 3000}, {timeoutMs: 300}),
                 S.DEADLINE_EXCEEDED);
    const el = Date.now() - t0;
    c.ok('deadline: failed near the deadline', el < 2000, `${el} ms`);
    const after = await waitStats((s) => s.cancelled_calls > before.cancelled_calls, 3000);
    c.eq('deadline: handler observed it (Stats.cancelled_calls +1)', after.cancelled_calls,
         before.cancelled_calls + 1);
  });

  await c.run('cancellation', async () => {
    const before = await stats();
    let call;
    const p = kt.unary(cl, 'Echo', {message: 'to-cancel', delay_ms: 4000},
                       {onCall: (x) => { call = x; }});
    await kt.sleep(300);
    call.cancel();
    await c.code('cancel: client sees CANCELLED', p, S.CANCELLED);
    const after = await waitStats((s) => s.cancelled_calls > before.cancelled_calls, 3000);
    c.eq('cancel: handler observed the cancellation (Stats.cancelled_calls +1)',
         after.cancelled_calls, before.cancelled_calls + 1);
  });

  await c.run('unimplemented', async () => {
    const id = (x) => x;
    for (const m of ['/keel.echo.v1.Echo/Nope', '/keel.nope.v1.Nope/Echo']) {
      await c.code(`unknown method ${m} -> UNIMPLEMENTED`, new Promise((resolve, reject) => {
        cl.makeUnaryRequest(m, id, id, Buffer.alloc(0), {deadline: Date.now() + T},
                            (err, r) => (err ? reject(err) : resolve(r)));
      }), S.UNIMPLEMENTED);
    }
  });

  await c.run('oversize', async () => {
    const r = await kt.unary(cl, 'Echo', {payload: Buffer.alloc(60 * 1024, 'y')});
    c.eq('60 KiB payload under the 64Ki limit echoes', r.response.payload.length, 60 * 1024);
    await c.code('100 KiB payload over the 64Ki limit -> RESOURCE_EXHAUSTED',
                 kt.unary(cl, 'Echo', {payload: Buffer.alloc(100 * 1024, 'z')}),
                 S.RESOURCE_EXHAUSTED);
    const call = cl.Chat({deadline: Date.now() + T});
    const done = kt.readStream(call);
    call.write({payload: Buffer.alloc(100 * 1024, 'z')});
    const r2 = await done;
    call.end();
    c.eq('Chat with a 100 KiB message -> RESOURCE_EXHAUSTED', r2.status.code,
         S.RESOURCE_EXHAUSTED);
    const r3 = await kt.unary(cl, 'Echo', {message: 'still alive'});
    c.eq('server still serves after oversize requests', r3.response.message, 'still alive');
  });

  await c.run('unix socket', async () => {
    const u = new Echo(kt.need('UNIX_ADDR'), insecure);
    const r = await kt.unary(u, 'Echo', {message: 'over unix'}, {metadata: {'x-echo': 'u'}});
    c.ok('unix listener: Echo', r.response.message === 'over unix' &&
         r.response.echo_metadata === 'u', JSON.stringify(r.response));
    u.close();
  });

  await c.run('health', async () => {
    const h = new Health(kt.need('PLAIN_ADDR'), insecure);
    const r = await kt.unary(h, 'Check', {service: ''});
    c.eq('health Check "" -> SERVING', r.response.status, 1);
    const r2 = await kt.unary(h, 'Check', {service: 'keel.echo.v1.Echo'});
    c.eq('health Check keel.echo.v1.Echo -> SERVING', r2.response.status, 1);
    await c.code('health Check unknown service -> NOT_FOUND',
                 kt.unary(h, 'Check', {service: 'no.such.Service'}), S.NOT_FOUND);
    h.close();
  });

  const tlsOpts = {'grpc.ssl_target_name_override': 'localhost',
                   'grpc.default_authority': 'localhost'};
  await c.run('TLS', async () => {
    const t = new Echo(kt.need('TLS_ADDR'), grpc.credentials.createSsl(cert('ca.pem')), tlsOpts);
    const r = await kt.unary(t, 'Echo', {message: 'secret'}, {metadata: {'x-echo': 'tls'}});
    c.ok('TLS: Echo', r.response.message === 'secret' && r.response.echo_metadata === 'tls');
    const s = await kt.readStream(t.Expand({count: 3}, {deadline: Date.now() + T}));
    c.eq('TLS: Expand', s.messages.map((m) => m.sequence), [0, 1, 2]);
    t.close();
    const p = new Echo(kt.need('TLS_ADDR'), insecure);
    await c.code('TLS: plaintext client refused -> UNAVAILABLE',
                 kt.unary(p, 'Echo', {}, {timeoutMs: 5000}), S.UNAVAILABLE);
    p.close();
  });

  await c.run('mutual TLS', async () => {
    const addr = kt.need('MTLS_ADDR');
    const tryEcho = async (creds, what, want) => {
      const m = new Echo(addr, creds, tlsOpts);
      if (want === S.OK) {
        const r = await kt.unary(m, 'Echo', {message: 'mutual'});
        c.eq(what, r.response.message, 'mutual');
      } else {
        await c.code(what, kt.unary(m, 'Echo', {message: 'x'}, {timeoutMs: 5000}), want);
      }
      m.close();
    };
    const good = grpc.credentials.createSsl(cert('ca.pem'), cert('client.key'), cert('client.pem'));
    await tryEcho(good, 'mTLS: client cert from the CA -> Echo OK', S.OK);
    await tryEcho(grpc.credentials.createSsl(cert('ca.pem')),
                  'mTLS: client without a cert refused -> UNAVAILABLE', S.UNAVAILABLE);
    await tryEcho(grpc.credentials.createSsl(cert('ca.pem'), cert('other-client.key'),
                                             cert('other-client.pem')),
                  'mTLS: client cert from an unrelated CA refused -> UNAVAILABLE', S.UNAVAILABLE);
    await tryEcho(grpc.credentials.createSsl(cert('ca.pem'), cert('client.key'),
                                             cert('client.pem')),
                  'mTLS: good client still served after refusals', S.OK);
  });

  cl.close();
  c.finish();
}

main().catch((e) => {
  console.log(`FAIL: node_interop crashed: ${e && e.stack ? e.stack : e}`);
  process.exitCode = 1;
});
