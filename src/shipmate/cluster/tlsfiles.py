"""TLS contexts built from a machine's PKI directory (:mod:`shipmate.cluster.ca`): the etcd
client's credentials, and the TCP API's server and client SSL contexts."""

from __future__ import annotations

import ssl
from pathlib import Path

from shipmate.cluster.ca import Pki
from shipmate.errors import ConfigError
from shipmate.store.etcd_conn import Tls


def _pki(tls_dir: str | Path) -> Pki:
    p = Pki(Path(tls_dir))
    if not p.ready():
        raise ConfigError(f"no cluster certificate in {p.dir} (ca.crt, machine.crt, "
                          "machine.key)", hint="run `shipmate cluster init` or `cluster join`, "
                                               "or clear SHIPMATE_CLUSTER_TLS_DIR")
    return p


def etcd_tls(tls_dir: str | Path) -> Tls:
    """The etcd client's TLS: the cluster CA, this machine's certificate and key."""
    p = _pki(tls_dir)
    return Tls.from_files(str(p.ca_cert), str(p.cert), str(p.key))


def server_context(tls_dir: str | Path) -> ssl.SSLContext:
    """The TCP API's server side: this machine's certificate; a client certificate is asked
    for and, when given, must come from the cluster CA. Routes decide whether they need one
    (the image route does; joining cannot, the joiner has none yet)."""
    p = _pki(tls_dir)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(p.ca_cert))
    ctx.load_cert_chain(str(p.cert), str(p.key))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def client_context(tls_dir: str | Path) -> ssl.SSLContext:
    """A peer's client side: verify the server against the cluster CA, present our cert."""
    p = _pki(tls_dir)
    ctx = ssl.create_default_context(cafile=str(p.ca_cert))
    ctx.load_cert_chain(str(p.cert), str(p.key))
    return ctx


def pinned_context(ca_pem: bytes) -> ssl.SSLContext:
    """A client context trusting only ``ca_pem`` (a joiner, once it checked the CA's
    fingerprint against its token)."""
    return ssl.create_default_context(cadata=ca_pem.decode())
