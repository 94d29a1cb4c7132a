"""Configuration loading, endpoint resolution, sizes and path rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from dms.config import load_config
from dms.errors import ConfigError, PathError
from dms.fs.paths import is_staging_name, staging_path, validate_pair
from dms.settings import DEFAULT_BROKER_URL, redis_client_url, resolve_endpoints
from dms.sizes import format_size, parse_size


def test_sizes() -> None:
    assert parse_size("64MiB") == 64 * 1024**2
    assert parse_size("1G") == 1024**3
    assert parse_size("1GB") == 10**9
    assert parse_size("4096") == 4096
    assert format_size(1536) == "1.5 KiB"
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


def test_repository_workers_yml_is_valid() -> None:
    cfg = load_config(Path(__file__).parents[2] / "workers.yml")
    assert cfg.defaults.parallelism >= 1 and cfg.defaults.chunk_size > 0


def test_config_errors_name_file_key_and_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("control:\n  broker_url: localhost\n")
    with pytest.raises(ConfigError, match=r"bad\.yml.*control\.broker_url.*'localhost'"):
        load_config(bad)
    bad.write_text("defaults:\n  parallelism: 0\n")
    with pytest.raises(ConfigError, match=r"defaults\.parallelism.*0"):
        load_config(bad)
    bad.write_text("defaults:\n  chunk_size: huge\n")
    with pytest.raises(ConfigError, match=r"defaults\.chunk_size.*'huge'"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)
    bad.write_text("control: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_endpoint_resolution_order(tmp_path: Path) -> None:
    assert resolve_endpoints(environ={}) == resolve_endpoints(environ={})
    none = resolve_endpoints(environ={})
    assert not none.configured and none.broker_url == DEFAULT_BROKER_URL
    cfg = tmp_path / "w.yml"
    cfg.write_text("control:\n  broker_url: redis://cfg:1/0\n")
    from_file = resolve_endpoints(str(cfg), environ={})
    assert from_file.configured and from_file.broker_url == from_file.state_url == "redis://cfg:1/0"
    env = resolve_endpoints(str(cfg), environ={"DMS_BROKER_URL": "redis://env:2/0", "DMS_STATE_URL": "redis://s:3/1"})
    assert (
        env.broker_url == "redis://env:2/0"
        and env.state_url == "redis://s:3/1"
        and env.result_backend == env.broker_url
    )
    assert redis_client_url("redis+socket:///tmp/x.sock?virtual_host=2") == "unix:///tmp/x.sock?db=2"


def test_staging_names_are_hidden_tagged_and_bounded() -> None:
    s = staging_path("/d/sub/file.txt", "req-1")
    assert s.startswith("/d/sub/.file.txt.dms-") and is_staging_name(s.rsplit("/", 1)[1])
    assert staging_path("/d/f", "req-1") != staging_path("/d/f", "req-2")
    long = staging_path("/d/" + "x" * 250, "r")
    assert len(long.rsplit("/", 1)[1]) <= 255 and is_staging_name(long.rsplit("/", 1)[1])


def test_path_pairs_are_validated(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with pytest.raises(PathError, match="does not exist"):
        validate_pair(str(tmp_path / "nope"), str(tmp_path / "d"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(PathError, match="not a directory"):
        validate_pair(str(tmp_path / "file"), str(tmp_path / "d"))
    with pytest.raises(PathError, match="inside the source"):
        validate_pair(str(src), str(src / "sub"))
    with pytest.raises(PathError, match="inside the source"):
        validate_pair(str(src), str(src))
    with pytest.raises(PathError, match="not a directory"):
        validate_pair(str(src), str(tmp_path / "file"))
    (tmp_path / "srcx").mkdir()
    assert validate_pair(str(src), str(tmp_path / "srcx")) == (str(src), str(tmp_path / "srcx"))


CLUSTERS_YML = """
defaults:
  scheduler: round_robin
clusters:
  A:
    nodes:
      a1:
        control: {interface: eth0, address: 10.0.0.11}
        data:
          - {interface: ib0, address: 192.168.100.11, network: rail0}
          - {interface: ib1, address: "fd00::11"}
        port: 7400
        roots: [/lustre/a/]
        concurrency: 8
        secret_file: /etc/dms/secret
  B:
    nodes:
      b1:
        data: [{interface: ib0, address: 192.168.100.21}]
        roots: [/gpfs/b]
"""


def test_clusters_load_into_typed_nodes(tmp_path: Path) -> None:
    path = tmp_path / "workers.yml"
    path.write_text(CLUSTERS_YML)
    cfg = load_config(path)
    a1 = cfg.node("a1")
    assert a1.cluster == "A" and a1.port == 7400 and a1.concurrency == 8
    assert a1.roots == ("/lustre/a",)
    assert [(e.interface, e.address, e.network) for e in a1.data] == [
        ("ib0", "192.168.100.11", "rail0"),
        ("ib1", "fd00::11", ""),
    ]
    assert a1.control is not None and a1.control.address == "10.0.0.11"
    b1 = cfg.node("b1")
    assert b1.port == 7400 and b1.concurrency == 4 and b1.secret_file is None
    assert cfg.defaults.scheduler == "round_robin"
    with pytest.raises(ConfigError, match=r"no node named 'c9'.*a1, b1"):
        cfg.node("c9")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("192.168.100.21", "192.168.100.300"), r"clusters\.B\.nodes\.b1\.data\[0\]\.address.*192\.168\.100\.300"),
        (("roots: [/gpfs/b]", "roots: [gpfs/b]"), r"clusters\.B\.nodes\.b1\.roots\[0\].*absolute.*'gpfs/b'"),
        (("roots: [/gpfs/b]", "roots: [/gpfs/../etc]"), r"roots\[0\].*'\.\.'"),
        (("port: 7400", "port: 70000"), r"clusters\.A\.nodes\.a1\.port.*70000"),
        (("concurrency: 8", "concurrency: 0"), r"clusters\.A\.nodes\.a1\.concurrency.*0"),
        (("concurrency: 8", "concurrency: 8\n        metrics_port: 99999"), r"a1\.metrics_port.*99999"),
        (("concurrency: 8", "concurrency: 8\n        metrics_port: yes"), r"a1\.metrics_port.*True"),
        (("      b1:", "      a1:"), r"node name already used in cluster 'A'"),
        (("interface: ib1", "interface: ib0"), r"interface names repeat"),
        (("secret_file: /etc/dms/secret", "secret_file: secret.txt"), r"secret_file.*absolute"),
        (("        port: 7400", "        prot: 7400"), r"unknown key\(s\) \['prot'\]"),
        (("scheduler: round_robin", "scheduler: 'round robin'"), r"defaults\.scheduler"),
    ],
)
def test_cluster_errors_name_file_key_and_value(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    path = tmp_path / "workers.yml"
    path.write_text(CLUSTERS_YML.replace(*change))
    with pytest.raises(ConfigError, match=r"workers\.yml: .*" + message):
        load_config(path)


def test_secret_file_must_be_private_and_long_enough(tmp_path: Path) -> None:
    from dms.config import read_secret

    path = tmp_path / "workers.yml"
    secret = tmp_path / "secret"
    path.write_text(CLUSTERS_YML.replace("/etc/dms/secret", str(secret)))
    node = load_config(path).node("a1")
    with pytest.raises(ConfigError, match="cannot read secret_file"):
        read_secret(node, str(path))
    secret.write_text("short\n")
    secret.chmod(0o600)
    with pytest.raises(ConfigError, match="shorter than 16 bytes"):
        read_secret(node, str(path))
    secret.write_text("a-long-enough-shared-secret\n")
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match=r"readable by other users.*chmod 600"):
        read_secret(node, str(path))
    secret.chmod(0o600)
    assert read_secret(node, str(path)) == b"a-long-enough-shared-secret"


def test_a_secret_file_may_hold_a_previous_secret_on_a_second_line(tmp_path: Path) -> None:
    """Rotation (decision 0026): current first, previous second; a third line, an empty file or
    a short previous secret is refused with the reason."""
    from dms.config import read_secrets

    path = tmp_path / "workers.yml"
    secret = tmp_path / "secret"
    path.write_text(CLUSTERS_YML.replace("/etc/dms/secret", str(secret)))
    node = load_config(path).node("a1")
    secret.write_text("the-new-shared-secret-0001\n\n  the-old-shared-secret-0000  \n")
    secret.chmod(0o600)
    assert read_secrets(node, str(path)) == (b"the-new-shared-secret-0001", b"the-old-shared-secret-0000")
    secret.write_text("the-new-shared-secret-0001\n")
    assert read_secrets(node, str(path)) == (b"the-new-shared-secret-0001", b"")
    secret.write_text("the-new-shared-secret-0001\nshort\n")
    with pytest.raises(ConfigError, match=r"previous secret .* shorter than 16 bytes"):
        read_secrets(node, str(path))
    secret.write_text("a" * 20 + "\n" + "b" * 20 + "\n" + "c" * 20 + "\n")
    with pytest.raises(ConfigError, match=r"at most a previous one .* 3 lines"):
        read_secrets(node, str(path))
    secret.write_text("\n")
    with pytest.raises(ConfigError, match="0 lines"):
        read_secrets(node, str(path))


def test_direction_and_cluster_options() -> None:
    from dms.request import make_params

    p = make_params("/a", "/b", request_id="r", direction="A_TO_B")
    assert (p.source_cluster, p.destination_cluster) == ("A", "B")
    assert (p.control_queue, p.finalize_queue) == ("dms.cluster.A", "dms.cluster.B")
    assert make_params("/a", "/b", request_id="r").finalize_queue == ""  # = control_queue
    with pytest.raises(ValueError, match="A_TO_B"):
        make_params("/a", "/b", request_id="r", direction="AB")
    with pytest.raises(ValueError, match="both"):
        make_params("/a", "/b", request_id="r", source_cluster="A")
    with pytest.raises(ValueError, match="contradicts"):
        make_params("/a", "/b", request_id="r", direction="A_TO_B", source_cluster="C", destination_cluster="B")


def _example(tmp_path: Path) -> Path:
    """The commented two-cluster example of the shipped workers.yml, uncommented."""
    text = (Path(__file__).resolve().parents[2] / "workers.yml").read_text()
    block = text[text.index("# A deployment of two clusters") :].splitlines()
    body = [line[2:] for line in block if line.startswith("#   ") or line.rstrip() in ("# control:", "# defaults:",
                                                                                      "# clusters:")]  # fmt: skip
    path = tmp_path / "workers.yml"
    path.write_text("\n".join(body) + "\n")
    return path


def test_the_shipped_two_cluster_example_is_valid_and_check_prints_each_node(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from dms.worker.main import main

    path = _example(tmp_path)
    config = load_config(str(path))
    assert sorted(config.clusters) == ["A", "B"] and config.node("b1").port == 7400
    result = CliRunner().invoke(main, ["--check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "valid; 2 cluster(s), 3 node(s); broker redis://:***@10.0.0.5:6379/0" in out, out
    assert "node a1 (cluster A), concurrency 8" in out
    assert "dms.nic.a1.ib0" in out and "192.168.100.21:7400 (ib0, rail0)" in out, out
    assert "roots    /gpfs/b" in out and "/etc/dms/secret (not usable here" in out, out
    one = CliRunner().invoke(main, ["--check", "b1", "--config", str(path)])
    assert one.exit_code == 0 and "node a1" not in one.output and "node b1" in one.output, one.output
    path.write_text(path.read_text().replace("192.168.100.12", "192.168.100.300"))
    bad = CliRunner().invoke(main, ["--check", "--config", str(path)])
    assert bad.exit_code == 4 and "192.168.100.300" in bad.output, bad.output
    assert CliRunner().invoke(main, ["--config", str(path)]).exit_code == 2  # no NODE, no --check
