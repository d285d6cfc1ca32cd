"""The deployment files, checked without a Docker engine or a cluster (none runs on these machines).

Kubernetes: every manifest validates against the API schemas (``kubernetes-validate``, strict), and
what makes replicas safe is there: readiness on /readyz, liveness on /healthz, a grace period longer
than the drain, a PodDisruptionBudget and an autoscaler on the Deployment, a Service selecting its
pods, configuration from a ConfigMap (whose variables and config file pixelgate accepts) and secrets
from a Secret. Compose: ``docker compose up`` still starts the one gateway; the ``scale`` profile's
replicas share what must be shared and point their links at the balancer; the HAProxy file passes
``haproxy -c`` with the compose service names. (The profile itself runs as local processes in
``test_replicas.py``.)
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.provider_config import declared_variables
from app.settings import Settings, known_variables
from app.settings_sources import AWS_VARIABLES
from tests.scaleout.cluster import compose_file, interpolate
from tests.scaleout.haproxy import CONFIG as HAPROXY_CONFIG
from tests.scaleout.haproxy import environment as haproxy_environment
from tests.scaleout.haproxy import haproxy_binary

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
SHARED = ("PIXELGATE_SIGNING_SECRET", "PIXELGATE_STATE_URL", "PIXELGATE_DATABASE_URL", "PIXELGATE_STORE_URL")
"""What the contract says replicas must share to act as one gateway."""
DEFAULT_DRAIN_SECONDS = 30


def manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object under deploy/kubernetes, by file name."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found[path.name] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return found


def by_kind(kind: str) -> dict[str, Any]:
    (found,) = [doc for doc in manifests().values() if doc["kind"] == kind]
    return found


def accepted_variables() -> frozenset[str]:
    """Variables a pixelgate process reads: its PIXELGATE_ ones, the AWS ones, the provider kinds' own."""
    return known_variables() | frozenset(AWS_VARIABLES.values()) | frozenset(declared_variables())


@pytest.mark.parametrize("name", sorted(manifests()))
def test_each_manifest_is_valid_against_the_kubernetes_schemas(name: str) -> None:
    kubernetes_validate.validate(manifests()[name], kubernetes_validate.latest_version(), strict=True)


def test_the_validator_refuses_a_broken_manifest() -> None:
    broken = copy.deepcopy(by_kind("Deployment"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_the_kustomization_applies_every_manifest_but_the_secret_example() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8"))
    assert sorted(kustomization["resources"]) == sorted(set(manifests()) - {"secret.example.yaml"})


def test_the_deployment_probes_drains_and_reads_its_configuration() -> None:
    deployment = by_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    config = by_kind("ConfigMap")
    drain = int(config["data"].get("PIXELGATE_DRAIN_TIMEOUT_SECONDS", DEFAULT_DRAIN_SECONDS))
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] > pause + drain + 5  # the cancel calls after the drain
    sources = {next(iter(source)): next(iter(source.values()))["name"] for source in container["envFrom"]}
    assert sources == {"configMapRef": config["metadata"]["name"], "secretRef": by_kind("Secret")["metadata"]["name"]}
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert by_kind("Service")["spec"]["selector"].items() <= labels.items()
    assert by_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = by_kind("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])


def test_the_configmap_and_the_secret_hold_what_pixelgate_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = by_kind("ConfigMap")["data"]
    secret = by_kind("Secret")["stringData"]
    variables = {name for name in (*config, *secret) if name.isupper()}
    assert variables <= accepted_variables(), variables - accepted_variables()
    assert set(SHARED) <= variables
    # The config file the ConfigMap mounts is one pixelgate starts with.
    path = tmp_path / "pixelgate.yaml"
    path.write_text(config["pixelgate.yaml"], encoding="utf-8")
    monkeypatch.setenv("PIXELGATE_CONFIG", str(path))
    assert Settings.load().image_ttl_seconds == 3600


def test_docker_compose_up_still_starts_the_one_gateway() -> None:
    services = compose_file()["services"]
    assert [name for name, service in services.items() if "profiles" not in service] == ["pixelgate"]
    single = services["pixelgate"]
    assert single["healthcheck"]["start_period"]
    assert single["environment"]["PIXELGATE_PUBLIC_URL"].endswith(":8080}")  # its published port


def test_the_scale_profile_shares_what_replicas_must_share() -> None:
    compose = compose_file()
    services = compose["services"]
    scale = {name for name, service in services.items() if "scale" in service.get("profiles", [])}
    assert scale == {"pixelgate-1", "pixelgate-2", "lb", "postgres", "redis", "s3"}
    replica = compose["x-pixelgate-replica"]
    assert services["pixelgate-1"] == services["pixelgate-2"] == replica  # the same settings, the same secrets
    environment = replica["environment"]
    assert set(SHARED) <= set(environment)
    assert set(environment) <= accepted_variables(), set(environment) - accepted_variables()
    # Links point at the balancer, on the port it publishes.
    published = services["lb"]["ports"][0].rsplit(":", 1)[0]
    assert interpolate(environment["PIXELGATE_PUBLIC_URL"], {}) == f"http://{published}"
    assert replica["healthcheck"]["start_period"] and "/readyz" in replica["healthcheck"]["test"][-1]
    assert {f"{service}:8080" for service in ("pixelgate-1", "pixelgate-2")} == {
        value for name, value in services["lb"]["environment"].items() if name.startswith("PIXELGATE_REPLICA_")
    }
    assert "./deploy/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in services["lb"]["volumes"]
    # Both the gateway and the replicas read the mounted configuration file.
    for service in (services["pixelgate"], replica):
        (mount,) = [volume for volume in service["volumes"] if volume.startswith("./deploy/pixelgate.yaml:")]
        assert mount.split(":")[1] == service["environment"]["PIXELGATE_CONFIG"]
    # SeaweedFS takes the same credentials the replicas sign with.
    s3 = services["s3"]["environment"]
    assert (s3["AWS_ACCESS_KEY_ID"], s3["AWS_SECRET_ACCESS_KEY"]) == (
        environment["AWS_ACCESS_KEY_ID"],
        environment["AWS_SECRET_ACCESS_KEY"],
    )


def test_the_mounted_config_file_is_one_pixelgate_starts_with(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXELGATE_CONFIG", str(ROOT / "deploy" / "pixelgate.yaml"))
    assert Settings.load().image_ttl_seconds == 3600


def test_the_haproxy_file_is_valid_with_the_compose_addresses() -> None:
    lb = compose_file()["services"]["lb"]["environment"]
    env = haproxy_environment(lb["PIXELGATE_LB_BIND"], [lb["PIXELGATE_REPLICA_1"], lb["PIXELGATE_REPLICA_2"]])
    result = subprocess.run(
        [str(haproxy_binary()), "-c", "-f", str(HAPROXY_CONFIG)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    missing = subprocess.run(
        [str(haproxy_binary()), "-c", "-f", str(HAPROXY_CONFIG)], env={}, capture_output=True, text=True, check=False
    )
    assert missing.returncode != 0  # the addresses come from the environment, nothing is hard-wired
