#!/usr/bin/python3
"""keel-apiserver authentication and authorization over TLS (python3-grpcio),
against keel-store.

usage: security.py KEEL_APISERVER API_DESCRIPTORS.pb keel-store KEEL_STORE

Certificates come from e2e/testlib/certs.sh plus client certificates signed
by its CA here (openssl CLI): CN=system:node:n1,O=system:nodes;
CN=alice,O=keel:viewers; CN=root,O=system:masters. The token file holds an
admin, a viewer, node n1 (system:node:n1 in system:nodes) and a user with no
group. Two apiservers share the store:
  mtls    --tls-cert-file --tls-private-key-file --client-ca-file --token-auth-file
  tokens  --tls-cert-file --tls-private-key-file --token-auth-file
Checks: no credentials and bad tokens are UNAUTHENTICATED (on both: a client
CA accepts certificates, it does not make them the only way in), a token
decides alone even next to a good certificate, foreign CAs and plaintext fail
the handshake; viewers read and are PERMISSION_DENIED on writes with a
message naming user, verb and object; node n1 writes its own Node, Lease and
the status of pods bound to it and nothing of n2's; admins write. Startup
refuses contradictory or broken auth flags.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apiserver_lib as L  # noqa: E402
from apiserver_lib import SC, T, expect_code, gr, dr  # noqa: E402

import grpc  # noqa: E402
import keeltest as kt  # noqa: E402

APISERVER, DESCRIPTORS, STORE_KIND, STORE_BIN = sys.argv[1:5]

TOKENS = {
    "admin": ("admin-token-7f3a9c", "admin", "uid-admin", "keel:admins"),
    "viewer": ("viewer-token-51d2e8", "victor", "uid-victor", "keel:viewers"),
    "node1": ("node1-token-c0ffee", "system:node:n1", "uid-n1", "system:nodes"),
    "nobody": ("nobody-token-0badf0", "nobody", "uid-nobody", ""),
}
BAD_TOKEN = "not-a-token-9e9e9e"


def make_client_cert(d, name, subject):
    """A client certificate signed by the test CA in d."""
    env = dict(os.environ, OPENSSL_CONF="/dev/null")
    key, csr, pem, ext = (os.path.join(d, name + s) for s in (".key", ".csr", ".pem", ".ext"))
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=clientAuth\n")
    for argv in (["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key],
                 ["req", "-new", "-key", key, "-out", csr, "-subj", subject, "-sha256"],
                 ["x509", "-req", "-in", csr, "-CA", os.path.join(d, "ca.pem"), "-CAkey", os.path.join(d, "ca.key"),
                  "-set_serial", str(abs(hash(name)) % (1 << 60) + 1), "-days", "2", "-sha256", "-extfile", ext,
                  "-out", pem]):
        subprocess.run(["openssl"] + argv, check=True, capture_output=True, env=env)
    return key, pem


class Conn:
    """TLS channels to one apiserver with a chosen client cert and token."""

    def __init__(self, types, addr, certs):
        self.types, self.addr, self.certs = types, addr, certs
        self.opened = []

    def api(self, cert=None, token=None, ca="ca"):
        key = chain = None
        if cert:
            key, chain = kt.read(self.certs[cert][0]), kt.read(self.certs[cert][1])
        creds = grpc.ssl_channel_credentials(root_certificates=kt.read(self.certs[ca][1]), private_key=key,
                                             certificate_chain=chain)
        ch = grpc.secure_channel(self.addr, creds, options=[("grpc.ssl_target_name_override", "localhost")])
        self.opened.append(ch)
        return L.Api(self.types, ch, token)

    def plaintext(self):
        ch = grpc.insecure_channel(self.addr)
        self.opened.append(ch)
        return L.Api(self.types, ch)

    def close(self):
        for ch in self.opened:
            ch.close()


def denied(c, what, fn, *parts):
    return expect_code(c, what, fn, SC.PERMISSION_DENIED, *parts)


def unauthenticated(c, what, fn, *parts):
    return expect_code(c, what, fn, SC.UNAUTHENTICATED, *parts)


def allowed(c, what, fn):
    code, r = L.rpc_error(fn)
    c.ok(what, code is None, f"{code} {r!r:.300}")
    return r if code is None else None


def first_event(api, service, M, **kw):
    """Opens a watch that ends after 1 s; returns (code, details)."""
    w = L.Watcher(getattr(api, service).Watch(M["WatchRequest"](timeout_seconds=1, **kw), timeout=T))
    w.wait_end(T)
    return w.code, w.details


def test_authentication(c, M, conn, label, client_ca):
    """Who may connect at all, on one apiserver."""
    adm = conn.api(token=TOKENS["admin"][0])
    r = allowed(c, f"{label}: an admin bearer token without a client certificate is accepted",
                lambda: adm.Namespaces.Get(gr(M, "default")))
    if r is not None:
        c.eq(f"{label}: ...and reads", r.metadata.name, "default")
    unauthenticated(c, f"{label}: no credentials -> UNAUTHENTICATED naming what to present",
                    lambda: conn.api().Pods.List(M["ListRequest"]()), "no credentials",
                    "client certificate or a bearer token" if client_ca else "send a bearer token")
    code, details = first_event(conn.api(), "Pods", M)
    c.eq(f"{label}: no credentials on a Watch -> UNAUTHENTICATED", code, SC.UNAUTHENTICATED)
    bad = conn.api(token=BAD_TOKEN)
    unauthenticated(c, f"{label}: a bad token -> UNAUTHENTICATED", lambda: bad.Pods.List(M["ListRequest"]()),
                    "invalid bearer token")
    code, details = L.rpc_error(lambda: bad.Pods.List(M["ListRequest"]()))
    c.ok(f"{label}: the refusal does not echo the token", BAD_TOKEN not in str(details), details)
    basic = conn.api()
    basic.metadata = [("authorization", "Basic YWRtaW46YWRtaW4=")]
    unauthenticated(c, f"{label}: a Basic authorization header -> UNAUTHENTICATED",
                    lambda: basic.Pods.List(M["ListRequest"]()), "unsupported authorization scheme")
    expect_code(c, f"{label}: plaintext to the TLS port -> UNAVAILABLE",
                lambda: conn.plaintext().Pods.List(M["ListRequest"](), timeout=5), SC.UNAVAILABLE)
    expect_code(c, f"{label}: a client that does not trust the server's CA -> UNAVAILABLE",
                lambda: conn.api(ca="other-ca").Pods.List(M["ListRequest"](), timeout=5), SC.UNAVAILABLE)


def test_mtls_identities(c, M, conn):
    """Certificates: CN is the user, O the groups; a token decides alone."""
    root = conn.api(cert="root")
    r = allowed(c, "mtls: system:masters certificate creates a pod", lambda: root.Pods.Create(L.pod(M, "by-root")))
    if r is not None:
        root.Pods.Delete(dr(M, "by-root", "default"))
    unauthenticated(c, "mtls: a bad token next to a good certificate -> UNAUTHENTICATED (no fallback)",
                    lambda: conn.api(cert="root", token=BAD_TOKEN).Pods.List(M["ListRequest"]()),
                    "invalid bearer token")
    expect_code(c, "mtls: a certificate from another CA fails the handshake -> UNAVAILABLE",
                lambda: conn.api(cert="other-client").Pods.List(M["ListRequest"](), timeout=5), SC.UNAVAILABLE)
    victor = conn.api(cert="client", token=TOKENS["viewer"][0])
    denied(c, "mtls: the token's identity wins over the certificate's (viewer token + plain cert)",
           lambda: victor.Pods.Create(L.pod(M, "x")), 'user "victor"')
    plain = conn.api(cert="client")
    denied(c, "mtls: a certificate without groups reads nothing", lambda: plain.Pods.List(M["ListRequest"]()),
           'user "keel-test-client"', "list", "pods")


def test_viewer(c, M, api, label, user, groups):
    allowed(c, f"{label}: viewer lists pods", lambda: api.Pods.List(M["ListRequest"]()))
    allowed(c, f"{label}: viewer gets a pod", lambda: api.Pods.Get(gr(M, "web-1", "default")))
    allowed(c, f"{label}: viewer lists nodes", lambda: api.Nodes.List(M["ListRequest"]()))
    allowed(c, f"{label}: viewer reads a Deployment's scale", lambda: api.Deployments.GetScale(gr(M, "dep",
                                                                                                 "default")))
    code, details = first_event(api, "Pods", M, namespace="default")
    c.eq(f"{label}: viewer watches pods (ends OK at timeout_seconds)", (code, details), (SC.OK, ""))
    who = f'user "{user}" (groups {groups})'
    denied(c, f"{label}: viewer creating a pod -> PERMISSION_DENIED naming user, verb, object",
           lambda: api.Pods.Create(L.pod(M, "by-viewer")), who, 'cannot create pods "default/by-viewer"')
    p = api.Pods.Get(gr(M, "web-1", "default"))
    p.metadata.labels["x"] = "y"
    denied(c, f"{label}: viewer updating a pod -> PERMISSION_DENIED", lambda: api.Pods.Update(p), who,
           "cannot update pods", "default/web-1")
    denied(c, f"{label}: viewer deleting a pod -> PERMISSION_DENIED", lambda: api.Pods.Delete(dr(M, "web-1",
                                                                                                "default")),
           who, "cannot delete pods", "default/web-1")
    sc = api.Deployments.GetScale(gr(M, "dep", "default"))
    sc.spec.replicas = 9
    denied(c, f"{label}: viewer scaling a Deployment -> PERMISSION_DENIED", lambda: api.Deployments.UpdateScale(sc),
           who, "update", "deployments/scale")
    denied(c, f"{label}: viewer creating a namespace -> PERMISSION_DENIED",
           lambda: api.Namespaces.Create(L.namespace(M, "by-viewer")), who, "create", "namespaces")


def test_node(c, M, api, admin, label, name="n1"):
    who = f'user "system:node:{name}" (groups system:nodes)'
    n = admin.Nodes.Get(gr(M, name))
    n.metadata.labels["touched-by"] = label
    allowed(c, f"{label}: node {name} updates its own Node", lambda: api.Nodes.Update(n))
    n = api.Nodes.Get(gr(M, name))
    del n.status.conditions[:]
    n.status.conditions.add(type="Ready", status="True", reason="KubeletReady")
    allowed(c, f"{label}: node {name} updates its own Node's status", lambda: api.Nodes.UpdateStatus(n))
    other = admin.Nodes.Get(gr(M, "n2"))
    other.metadata.labels["x"] = "y"
    denied(c, f"{label}: node {name} updating Node n2 -> PERMISSION_DENIED", lambda: api.Nodes.Update(other),
           who, "cannot update nodes", '"n2"')
    denied(c, f"{label}: node {name} updating Node n2's status -> PERMISSION_DENIED",
           lambda: api.Nodes.UpdateStatus(other), who, "nodes/status", '"n2"')
    p = api.Pods.Get(gr(M, "web-1", "default"))
    p.status.phase = "Running"
    p.status.pod_ip = "10.244.1.9"
    r = allowed(c, f"{label}: node {name} updates the status of its own pod", lambda: api.Pods.UpdateStatus(p))
    if r is not None:
        c.eq(f"{label}: ...stored", admin.Pods.Get(gr(M, "web-1", "default")).status.phase, "Running")
    p2 = api.Pods.Get(gr(M, "web-2", "default"))
    p2.status.phase = "Running"
    denied(c, f"{label}: node {name} updating the status of a pod bound to n2 -> PERMISSION_DENIED",
           lambda: api.Pods.UpdateStatus(p2), who, 'cannot update pods/status "default/web-2"',
           'pod is bound to node "n2"')
    c.eq(f"{label}: ...and n2's pod is unchanged", admin.Pods.Get(gr(M, "web-2", "default")).status.phase, "Pending")
    p3 = api.Pods.Get(gr(M, "web-3", "default"))
    p3.status.phase = "Running"
    denied(c, f"{label}: node {name} updating the status of an unbound pod -> PERMISSION_DENIED",
           lambda: api.Pods.UpdateStatus(p3), who, "pods/status", "default/web-3")
    denied(c, f"{label}: node {name} creating a pod -> PERMISSION_DENIED",
           lambda: api.Pods.Create(L.pod(M, "by-node", node=name)), who, "cannot create pods")
    b = M["Binding"]()
    b.metadata.name = "web-3"
    b.metadata.namespace = "default"
    b.target.name = name
    denied(c, f"{label}: node {name} binding a pod -> PERMISSION_DENIED", lambda: api.Pods.Bind(b), who,
           "pods/binding")
    denied(c, f"{label}: node {name} deleting n2's pod -> PERMISSION_DENIED",
           lambda: api.Pods.Delete(dr(M, "web-2", "default")), who, "cannot delete pods", "default/web-2")
    allowed(c, f"{label}: node {name} reads pods bound to it (field selector)",
            lambda: api.Pods.List(M["ListRequest"](field_selector="spec.nodeName=" + name)))
    denied(c, f"{label}: node {name} listing deployments -> PERMISSION_DENIED",
           lambda: api.Deployments.List(M["ListRequest"]()), who, "cannot list deployments")
    lz = L.lease(M, name, "kube-node-lease", holder=name)
    code, _ = L.rpc_error(lambda: admin.Leases.Get(gr(M, name, "kube-node-lease")))
    if code is None:
        cur = api.Leases.Get(gr(M, name, "kube-node-lease"))
        cur.spec.renew_time.seconds = 1700000000
        allowed(c, f"{label}: node {name} renews its own Lease", lambda: api.Leases.Update(cur))
    else:
        allowed(c, f"{label}: node {name} creates its own Lease", lambda: api.Leases.Create(lz))
    denied(c, f"{label}: node {name} creating n2's Lease -> PERMISSION_DENIED",
           lambda: api.Leases.Create(L.lease(M, "n2", "kube-node-lease", holder="n2")), who, "leases")
    allowed(c, f"{label}: node {name} records an Event",
            lambda: api.Events.Create(L.event(M, f"{label}-ev", "default", pod_name="web-1")))


def startup_refusals(c, base, url, certs):
    def run(args, name):
        d = L.start_apiserver(APISERVER, url, base, name, args, wait=False)
        rc = d.wait(10 * L.SLOW)
        if rc is None:
            d.kill()
        return rc, d.log_tail()

    tf = os.path.join(base, "broken-tokens.csv")
    with open(tf, "w") as f:
        f.write("good-token,alice,uid1\nonly-a-token\n")
    rc, log = run([f"--token-auth-file={tf}"], "start-broken-tokens")
    c.ok("a token file with a broken line: the apiserver refuses to start, naming file and line",
         rc not in (None, 0) and tf in log and "2" in log, f"rc {rc}: {log}")
    good = os.path.join(base, "tokens.csv")
    rc, log = run([f"--token-auth-file={good}", "--anonymous-admin"], "start-anon-and-tokens")
    c.ok("--anonymous-admin with --token-auth-file: refused", rc not in (None, 0) and "anonymous" in log,
         f"rc {rc}: {log}")
    d = L.start_apiserver(APISERVER, url, base, "start-ca-no-cert", [f"--client-ca-file={certs['ca'][1]}"], wait=False)
    rc = d.wait(10 * L.SLOW)
    log = d.log_tail()
    c.ok("--client-ca-file without --tls-cert-file: refused", rc not in (None, 0) and "tls-cert-file" in log,
         f"rc {rc}: {log}")
    d = kt.Daemon("start-no-auth", [APISERVER, "--etcd-servers=" + url], base).start()
    rc = d.wait(10 * L.SLOW)
    c.ok("no way to authenticate: refused", rc not in (None, 0) and "authenticate" in d.log_tail(),
         f"rc {rc}: {d.log_tail()}")


def main():
    c = kt.Checks(f"apiserver security ({STORE_KIND})")
    types = L.ApiTypes(DESCRIPTORS)
    M = types.M
    base = kt.tmpdir("apiserver-sec")
    cdir = os.path.join(base, "certs")
    made = kt.make_certs(cdir)
    certs = {n: (made[n + ".key"], made[n + ".pem"]) for n in ("ca", "server", "client", "other-ca",
                                                                "other-client")}
    certs["node1"] = make_client_cert(cdir, "node1", "/CN=system:node:n1/O=system:nodes")
    certs["alice"] = make_client_cert(cdir, "alice", "/CN=alice/O=keel:viewers")
    certs["root"] = make_client_cert(cdir, "root", "/CN=root/O=system:masters")
    tokens = os.path.join(base, "tokens.csv")
    with open(tokens, "w") as f:
        for tok, user, uid, groups in TOKENS.values():
            f.write(f'{tok},{user},{uid},"{groups}"\n' if groups else f"{tok},{user},{uid}\n")
    store, url = L.start_store(STORE_KIND, STORE_BIN, base)
    tls = [f"--tls-cert-file={certs['server'][1]}", f"--tls-private-key-file={certs['server'][0]}"]
    mtls_d = L.start_apiserver(APISERVER, url, base, "mtls",
                               tls + [f"--client-ca-file={certs['ca'][1]}", f"--token-auth-file={tokens}"])
    tok_d = L.start_apiserver(APISERVER, url, base, "tokens", tls + [f"--token-auth-file={tokens}"])
    mtls = Conn(types, mtls_d.grpc_addr(), certs)
    tok = Conn(types, tok_d.grpc_addr(), certs)

    # Fixtures, written by an admin (certificate, so this works whatever the
    # token path does).
    admin = mtls.api(cert="root")
    for nn in ("n1", "n2"):
        admin.Nodes.Create(L.node(M, nn))
    admin.Pods.Create(L.pod(M, "web-1", node="n1"))
    admin.Pods.Create(L.pod(M, "web-2", node="n2"))
    admin.Pods.Create(L.pod(M, "web-3"))
    admin.Deployments.Create(L.deployment(M, "dep"))
    admin.Namespaces.Create(L.namespace(M, "kube-node-lease"))

    c.run("authentication, mtls apiserver (client CA + tokens)",
          lambda: test_authentication(c, M, mtls, "mtls", client_ca=True))
    c.run("authentication, tokens apiserver", lambda: test_authentication(c, M, tok, "tokens", client_ca=False))
    c.run("certificate identities", lambda: test_mtls_identities(c, M, mtls))
    c.run("viewer by certificate (alice)",
          lambda: test_viewer(c, M, mtls.api(cert="alice"), "mtls alice", "alice", "keel:viewers"))
    c.run("viewer by token (victor)",
          lambda: test_viewer(c, M, tok.api(token=TOKENS["viewer"][0]), "tokens victor", "victor", "keel:viewers"))
    c.run("node n1 by certificate", lambda: test_node(c, M, mtls.api(cert="node1"), admin, "mtls-cert"))
    c.run("node n1 by token", lambda: test_node(c, M, tok.api(token=TOKENS["node1"][0]), admin, "tokens-token"))

    def others():
        adm = tok.api(token=TOKENS["admin"][0])
        r = allowed(c, "tokens: admin token creates a pod", lambda: adm.Pods.Create(L.pod(M, "by-admin")))
        if r is not None:
            allowed(c, "tokens: admin token deletes it", lambda: adm.Pods.Delete(dr(M, "by-admin", "default")))
        nobody = tok.api(token=TOKENS["nobody"][0])
        denied(c, "tokens: a user without groups may not even get", lambda: nobody.Pods.Get(gr(M, "web-1", "default")),
               'user "nobody"', "cannot get pods")

    c.run("admin and a user without roles", others)
    c.run("startup refusals", lambda: startup_refusals(c, base, url, certs))
    mtls.close()
    tok.close()
    L.stop_all(c, [mtls_d, tok_d, store])
    return c


if __name__ == "__main__":
    L.main_wrapper(main)
