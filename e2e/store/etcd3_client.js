// e2e/store/etcd3_client.js — the npm etcd3 client (a client nobody here wrote)
// against an etcd v3 endpoint: KV, txn, watch, lease, lock, election, status.
// Run by conformance.py's node stage:
//   ETCD_ENDPOINT=127.0.0.1:PORT ETCD_PREFIX=/unique/prefix/ KEEL_NODE_MODULES=... node etcd3_client.js
// Every expectation is relative to revisions observed here; all keys live under
// ETCD_PREFIX (a namespace), so it runs against any etcd v3 server.
'use strict';

const path = require('path');
const kt = require(path.join(__dirname, '..', 'testlib', 'keeltest.js'));

const c = new kt.Checks('etcd3 (npm) client');
const endpoint = kt.need('ETCD_ENDPOINT');
const prefix = kt.need('ETCD_PREFIX');
let etcd3;
try {
  etcd3 = kt.npm('etcd3');
} catch (e) {
  console.log(`FAIL: npm etcd3 is not installed in KEEL_NODE_MODULES (${e.message})`);
  process.exit(1);
}

const client = new etcd3.Etcd3({hosts: `http://${endpoint}`, dialTimeout: 5000});
const ns = client.namespace(prefix);
const num = (x) => Number(x);

async function rev() {
  const r = await ns.get('__rev').exec();
  return num(r.header.revision);
}

// Waits until pred() holds or timeoutMs passes.
async function until(pred, timeoutMs = 10000) {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) return false;
    await kt.sleep(20);
  }
  return true;
}

async function kv() {
  const r0 = await rev();
  const put = await ns.put('a').value('1');
  c.eq('put: header.revision = previous + 1', num(put.header.revision), r0 + 1);
  c.eq('get().string()', await ns.get('a').string(), '1');
  await ns.put('a').value('2');
  await ns.put('b').value('x');
  await ns.put('c').value('y');
  const g = await ns.get('a').exec();
  const a = g.kvs[0];
  c.eq('get: create, mod, version of a twice-written key',
       [num(a.create_revision), num(a.mod_revision), num(a.version)], [r0 + 1, r0 + 2, 2]);
  c.eq('namespaced key on the wire carries the prefix', a.key.toString(), prefix + 'a');
  c.eq('getAll().keys()', await ns.getAll().keys(), ['a', 'b', 'c']);
  c.eq('getAll().count()', await ns.getAll().count(), 3);
  c.eq('getAll().prefix().strings()', await ns.getAll().prefix('b').strings(), {b: 'x'});
  c.eq('getAll().sort(Mod, Descend).limit(2)',
       await ns.getAll().sort('Mod', 'Descend').limit(2).keys(), ['c', 'b']);
  c.eq('getAll().sort(Value, Ascend)',
       await ns.getAll().sort('Value', 'Ascend').keys(), ['a', 'b', 'c']);
  const lim = await ns.getAll().limit(1).exec();
  c.eq('limit 1: more, count', [lim.more, num(lim.count)], [true, 3]);
  c.eq('get().revision(old) reads history', await ns.get('a').revision(r0 + 1).string(), '1');
  c.eq('get of a missing key: null', await ns.get('missing').string(), null);
  const prev = await ns.put('b').value('x2').getPrevious();
  c.eq('put().getPrevious()', prev.value.toString(), 'x');
  const r = await rev();
  const del = await ns.delete().key('missing');
  c.eq('delete of a missing key: deleted 0, no revision', [num(del.deleted), await rev()], [0, r]);
  const dels = await ns.delete().prefix('').getPrevious();
  c.eq('delete().all().getPrevious(): the deleted pairs', dels.map((x) => x.key.toString()),
       [prefix + 'a', prefix + 'b', prefix + 'c']);
  c.eq('delete of 3 keys: one revision', await rev(), r + 1);
  try {
    await ns.get('a').revision(r + 1000).string();
    c.fail('get at a future revision fails', 'succeeded');
  } catch (e) {
    c.ok('get at a future revision: GRPCOutOfRangeError with etcd\'s message',
         e instanceof etcd3.GRPCOutOfRangeError &&
         /etcdserver: mvcc: required revision is a future revision/.test(e.message),
         `${e.constructor.name}: ${e.message}`);
  }
}

async function txn() {
  await ns.put('t').value('v1');
  const r = await rev();
  let res = await ns.if('t', 'Value', '==', 'v1').and('t', 'Version', '==', 1)
                    .then(ns.put('t').value('v2'), ns.get('t'), ns.put('t2').value('z'))
                    .else(ns.put('never').value('x'))
                    .commit();
  c.eq('txn: succeeded, one revision', [res.succeeded, num(res.header.revision)], [true, r + 1]);
  c.eq('txn: get inside sees the txn\'s put',
       res.responses[1].response_range.kvs[0].value.toString(), 'v2');
  res = await ns.if('t', 'Value', '==', 'v1').then(ns.put('never').value('x'))
                .else(ns.get('t')).commit();
  c.eq('txn: false compare runs else', [res.succeeded, res.responses.length], [false, 1]);
  c.eq('txn: never written', await ns.get('never').string(), null);
  res = await ns.if('missing', 'Create', '==', 0).then(ns.put('created').value('1')).commit();
  c.eq('txn: create-if-absent (Create == 0)', res.succeeded, true);
  res = await ns.if('created', 'Create', '==', 0).then(ns.put('created').value('2')).commit();
  c.eq('txn: create-if-absent a second time fails', res.succeeded, false);
  res = await ns.if('t', 'Mod', '<', r + 2).then().commit();
  c.eq('txn: Mod < compare', res.succeeded, true);
  const lease = ns.lease(30, {autoKeepAlive: false});
  const id = await lease.grant();
  await lease.put('leased').value('v');
  res = await ns.if('leased', 'Lease', '==', id).commit();
  c.eq('txn: Lease == compare', res.succeeded, true);
  await lease.revoke();
  try {
    await ns.if('t', 'Value', '==', 'v2').then(ns.put('dup').value('1'), ns.put('dup').value('2'))
            .commit();
    c.fail('txn with a duplicate key fails', 'succeeded');
  } catch (e) {
    c.ok('txn with a duplicate key: InvalidArgument "etcdserver: duplicate key given in txn request"',
         e instanceof etcd3.GRPCInvalidArgumentError &&
         e.message.includes('etcdserver: duplicate key given in txn request'),
         `${e.constructor.name}: ${e.message}`);
  }
  // STM: a read-modify-write that retries on conflict.
  await ns.put('counter').value('0');
  await Promise.all([1, 2, 3].map(() => ns.stm().transact(async (tx) => {
    const v = Number(await tx.get('counter').string());
    await tx.put('counter').value(String(v + 1));
  })));
  c.eq('STM: three concurrent increments', await ns.get('counter').string(), '3');
}

async function watch() {
  const events = [];
  const w = await ns.watch().prefix('w/').withPreviousKV().create();
  w.on('put', (kv, prev) => events.push(['put', kv.key.toString(), kv.value.toString(),
                                        num(kv.version), prev ? prev.value.toString() : null]));
  w.on('delete', (kv, prev) => events.push(['delete', kv.key.toString(), num(kv.mod_revision),
                                           prev ? prev.value.toString() : null]));
  const r = await rev();
  await ns.put('w/1').value('a');
  await ns.put('w/1').value('b');
  await ns.put('other').value('x');
  await ns.delete().key('w/1');
  await until(() => events.length >= 3);
  c.eq('live watch: put, put with prev, delete with prev (keys relative to the namespace)',
       events, [['put', 'w/1', 'a', 1, null], ['put', 'w/1', 'b', 2, 'a'],
                ['delete', 'w/1', r + 4, 'b']]);
  await w.cancel();

  const hist = [];
  const h = await ns.watch().key('w/1').startRevision(String(r + 1)).create();
  h.on('data', (res) => {
    for (const e of res.events) hist.push([e.type, num(e.kv.mod_revision)]);
  });
  await until(() => hist.length >= 3);
  c.eq('watch from a past revision replays history', hist,
       [['Put', r + 1], ['Put', r + 2], ['Delete', r + 4]]);
  await h.cancel();
}

async function lease() {
  const l = ns.lease(20, {autoKeepAlive: false});
  const id = await l.grant();
  c.ok('lease grant: an ID', id && id !== '0', id);
  await l.put('lk').value('v');
  const kvs = (await ns.get('lk').exec()).kvs;
  c.eq('leased key carries the lease ID', String(kvs[0].lease), String(id));
  const ka = await l.keepaliveOnce();
  c.eq('keepaliveOnce: TTL', num(ka.TTL), 20);
  const ttl = await client.leaseClient.leaseTimeToLive({ID: id, keys: true});
  c.eq('leaseTimeToLive: grantedTTL and keys', [num(ttl.grantedTTL), ttl.keys.map(String)],
       [20, [prefix + 'lk']]);
  c.ok('leaseTimeToLive: 15 <= TTL <= 20', num(ttl.TTL) >= 15 && num(ttl.TTL) <= 20, ttl.TTL);
  const leases = await client.leaseClient.leaseLeases();
  c.ok('leaseLeases lists it', leases.leases.some((x) => String(x.ID) === String(id)));
  await l.revoke();
  c.eq('revoke deletes the leased key', await ns.get('lk').string(), null);
  try {
    await client.leaseClient.leaseRevoke({ID: id});
    c.fail('revoking twice fails', 'succeeded');
  } catch (e) {
    c.ok('revoking twice: fails with "etcdserver: requested lease not found"',
         e.message.includes('etcdserver: requested lease not found'),
         `${e.constructor.name}: ${e.message}`);
  }
  // Automatic keep-alive through the LeaseKeepAlive stream.
  const auto = ns.lease(3);
  let fired = 0;
  auto.on('keepaliveSucceeded', () => fired++);
  await auto.put('auto').value('v');
  await until(() => fired >= 1, 8000);
  c.ok('auto keep-alive: the stream answers', fired >= 1, `fired ${fired}`);
  c.eq('auto keep-alive: key still there', await ns.get('auto').string(), 'v');
  await auto.revoke();
}

async function lockAndElection() {
  const a = ns.lock('res');
  await a.acquire();
  let failed = null;
  try {
    await ns.lock('res').ttl(5).acquire();
  } catch (e) {
    failed = e;
  }
  c.ok('lock held: a second acquire fails with EtcdLockFailedError',
       failed instanceof etcd3.EtcdLockFailedError, String(failed));
  await a.release();
  const b = ns.lock('res').ttl(5);
  await b.acquire();
  c.ok('lock released: a second client acquires it', true);
  await b.release();

  const election = ns.election('leader', 5);
  const first = election.campaign('first');
  await first.wait();
  c.eq('election: first candidate leads', await election.leader(), 'first');
  const second = election.campaign('second');
  let secondElected = false;
  second.on('elected', () => { secondElected = true; });
  await kt.sleep(300);
  c.ok('election: second waits while first leads', !secondElected);
  await first.resign();
  await until(() => secondElected, 8000);
  c.ok('election: first resigns -> second elected (watch on the lower key\'s delete)',
       secondElected);
  c.eq('election: leader is now second', await election.leader(), 'second');
  await second.resign();
}

async function maintenance() {
  const s = await client.maintenance.status();
  c.ok('maintenance.status: version and leader', s.version && String(s.leader) ===
       String(s.header.member_id), JSON.stringify(s));
  const m = await client.cluster.memberList({});
  c.eq('cluster.memberList: one member, ID = status member_id',
       [m.members.length, String(m.members[0].ID)], [1, String(s.header.member_id)]);
}

async function main() {
  await c.run('etcd3: kv', kv);
  await c.run('etcd3: txn', txn);
  await c.run('etcd3: watch', watch);
  await c.run('etcd3: lease', lease);
  await c.run('etcd3: lock and election', lockAndElection);
  await c.run('etcd3: maintenance, cluster', maintenance);
  client.close();
  c.finish();
}

const timer = setTimeout(() => {
  console.log('FAIL: etcd3 client checks did not finish within 50 s');
  process.exit(1);
}, 50000);
timer.unref();
main().catch((e) => {
  console.log(`FAIL: ${e.stack || e}`);
  process.exit(1);
});
