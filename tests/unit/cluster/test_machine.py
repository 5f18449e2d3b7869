"""A machine's cluster file and what follows from it: etcd's TLS command line, the daemon's
settings, the supervisor's etcd environment, and following the etcd membership."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipmate.cluster import machine as mach
from shipmate.cluster import supervise
from shipmate.errors import ValidationError
from shipmate.store.etcd_members import EtcdMember, client_urls

MC = mach.MachineConfig("prod", "web-2", "10.0.0.6", True,
                        ("https://10.0.0.6:2379", "https://10.0.0.5:2379"),
                        initial_cluster="web-1=https://10.0.0.5:2380,web-2=https://10.0.0.6:2380",
                        initial_state="existing", log_dir="/run/x")


def test_the_file_round_trips(tmp_path: Path) -> None:
    assert mach.load(tmp_path) is None
    mach.save(tmp_path, MC)
    assert mach.load(tmp_path) == MC
    assert oct(mach.path(tmp_path).stat().st_mode & 0o777) == "0o600"


def test_etcd_requires_certificates_on_both_ports(tmp_path: Path) -> None:
    args = mach.etcd_args(tmp_path, MC)
    assert {"--client-cert-auth", "--peer-client-cert-auth", "--pre-vote"} <= set(args)
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert args[args.index("--trusted-ca-file") + 1] == str(tmp_path / "pki" / "ca.crt")
    assert args[args.index("--peer-trusted-ca-file") + 1] == str(tmp_path / "pki" / "ca.crt")
    assert args[args.index("--listen-client-urls") + 1].startswith("https://")
    assert args[args.index("--initial-cluster-state") + 1] == "existing"
    assert args[args.index("--initial-cluster") + 1] == MC.initial_cluster
    assert flags  # every flag has its value


def test_the_supervisor_drops_etcd_variables_its_flags_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETCD_NAME", "other")
    monkeypatch.setenv("ETCD_HEARTBEAT_INTERVAL", "50")
    env = supervise._etcd_env(mach.etcd_args(tmp_path, MC))
    assert "ETCD_NAME" not in env and env["ETCD_HEARTBEAT_INTERVAL"] == "50"


def test_daemon_settings(tmp_path: Path) -> None:
    env = mach.daemon_env(tmp_path, MC)
    assert env["SHIPMATE_STORE"] == "etcd"
    assert env["SHIPMATE_ETCD_ENDPOINTS"].split(",")[0] == "https://10.0.0.6:2379"
    assert env["SHIPMATE_CLUSTER_TLS_DIR"] == str(tmp_path / "pki")
    assert env["SHIPMATE_MACHINE_ID"] == "web-2" and env["SHIPMATE_API_PORT"] == "7787"


@pytest.mark.parametrize("name", ["", "Web", "a/b", "-x", "a b"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        mach.validate_name(name)


def test_bad_addresses_are_refused() -> None:
    with pytest.raises(ValidationError, match="--address"):
        mach.validate_address("web-1")


def test_clients_follow_the_voting_members_own_first() -> None:
    def member(name: str, learner: bool = False) -> EtcdMember:
        return EtcdMember(1, name, (), (f"https://{name}:2379",), learner)

    found = [member("c"), member("a"), member("b"), member("new", learner=True)]
    assert client_urls(found, ["https://b:2379", "https://gone:2379"]) == [
        "https://b:2379", "https://a:2379", "https://c:2379"]
