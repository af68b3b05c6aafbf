"""No Docker engine here: the deploy files are parsed and cross-checked instead.

Services, ports, env and health checks must point at things that exist: a service named
in a URL, a port the web process binds, a file mounted into a container, a ConfigMap or
Secret a Deployment reads, a container port a probe or Service names.
"""

import re
from urllib.parse import urlsplit

import pytest
import yaml

from tests.servers import ROOT

REQUIRED_ENV = {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"}
# Every variable the settings, gunicorn.conf.py or the image read (contract section 2 and ours).
KNOWN_ENV = REQUIRED_ENV | {
    "DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "PORT", "BIND", "WEB_CONCURRENCY", "TRUSTED_PROXIES",
    "RATE_LIMIT_PURCHASE_USER", "RATE_LIMIT_PURCHASE_IP", "RATE_LIMIT_LOGIN_IP", "RATE_LIMIT_LOGIN_USER",
    "LOCK_TIMEOUT_MS",
    "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_PRELOAD", "LOG_FORMAT", "LOG_LEVEL",
    "PROMETHEUS_MULTIPROC_DIR", "DB_CONNECT_TIMEOUT", "CONN_MAX_AGE", "DISABLE_SERVER_SIDE_CURSORS",
}


def _read_by_the_code(name: str) -> bool:
    code = "".join(path.read_text() for path in [*ROOT.glob("flashsale/settings/*.py"), ROOT / "gunicorn.conf.py"])
    return f'"{name}"' in code or f"'{name}'" in code


def test_every_env_variable_a_deploy_file_sets_is_read_by_the_code():
    for name in KNOWN_ENV:
        assert _read_by_the_code(name), name


# Dockerfile.

def test_dockerfile_is_slim_non_root_gunicorn_with_static_files_and_a_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms and all(image.endswith("-slim") for image in froms)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1].split(":")[0] not in {"root", "0"}
    assert "collectstatic --noinput" in text
    assert re.search(r'^CMD \["gunicorn", "--config", "gunicorn.conf.py", "flashsale.wsgi:application"\]', text, re.M)
    assert "/api/health/" in re.search(r"^HEALTHCHECK.*(?:\n .*)*", text, re.M).group(0)
    assert "DJANGO_SETTINGS_MODULE=flashsale.settings.production" in text
    exposed = re.search(r"^EXPOSE (\d+)", text, re.M).group(1)
    assert f"BIND=0.0.0.0:{exposed}" in text
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (ROOT / source).exists(), source
    # The build keeps only the runtime block of requirements.txt: its markers must exist.
    requirements = (ROOT / "requirements.txt").read_text()
    assert requirements.index("# Runtime") < requirements.index("# Embedded")
    runtime = requirements[requirements.index("# Runtime"):requirements.index("# Embedded")]
    assert "gunicorn==" in runtime and "pgserver" not in runtime and "pytest" not in runtime


# docker-compose.yml.

@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_postgres_16_redis_7_with_aof_web_and_nginx(compose):
    services = compose["services"]
    assert {"db", "redis", "web", "nginx", "migrate"} <= set(services)
    assert services["db"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert "--appendonly" in services["redis"]["command"]
    assert services["redis"]["command"][services["redis"]["command"].index("--appendonly") + 1] == "yes"
    for name in ("db", "redis", "web"):
        assert services[name]["healthcheck"]["test"], name
    assert "/api/health/" in " ".join(services["web"]["healthcheck"]["test"])
    for volume in ("pgdata", "redisdata"):
        assert volume in compose["volumes"]


def test_compose_web_scales_behind_nginx(compose):
    services = compose["services"]
    web, nginx = services["web"], services["nginx"]
    assert "ports" not in web, "a published host port would stop --scale web=N"
    assert "container_name" not in web
    assert nginx["ports"] and "web" in nginx["depends_on"]
    mounted = [volume.split(":") for volume in nginx["volumes"]]
    for source, _target, *_mode in mounted:
        assert (ROOT / source).exists(), source
    conf = (ROOT / mounted[0][0]).read_text()
    web_port = web["environment"].get("PORT") or "8000"
    assert f"server web:{web_port}" in conf
    assert str(web_port) in web["expose"]
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in conf  # what TRUSTED_PROXIES=1 expects


def test_compose_env_names_existing_services_and_known_settings(compose):
    services = compose["services"]
    env = services["web"]["environment"]
    assert set(env) >= REQUIRED_ENV
    assert set(env) <= KNOWN_ENV
    assert services["migrate"]["environment"] == env
    assert urlsplit(env["DATABASE_URL"].replace("${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}", "x")).hostname == "db"
    assert urlsplit(env["REDIS_URL"]).hostname == "redis"
    assert urlsplit(env["DATABASE_URL"].split("@")[-1].join(["postgres://", ""])).port in (None, 5432)
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


# Kubernetes.

@pytest.fixture(scope="module")
def manifests():
    docs = []
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc) and doc["metadata"]["name"]
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}


def _one(manifests, kind):
    (found,) = [doc for (k, _n), doc in manifests.items() if k == kind]
    return found


def test_k8s_deployment_probes_health_on_a_declared_port(manifests):
    deployment = _one(manifests, "Deployment")
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/api/health/"
        assert get["port"] in ports
        # Django's ALLOWED_HOSTS would refuse the pod IP the kubelet sends by default.
        host = {h["name"]: h["value"] for h in get["httpHeaders"]}["Host"]
        config = _one(manifests, "ConfigMap")["data"]
        assert host in config["ALLOWED_HOSTS"].split(",")
    assert ports["http"] == 8000  # the image binds 0.0.0.0:8000
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_k8s_env_comes_from_a_configmap_and_secret_that_exist(manifests):
    config, secret = _one(manifests, "ConfigMap"), _one(manifests, "Secret")
    provided = set(config["data"]) | set(secret["stringData"])
    assert set(secret["stringData"]) >= REQUIRED_ENV  # secrets are not in the ConfigMap
    assert not REQUIRED_ENV & set(config["data"])
    assert provided <= KNOWN_ENV
    for kind in ("Deployment", "Job"):
        pod = _one(manifests, kind)["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for source in container["envFrom"]:
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in manifests
                if "secretRef" in source:
                    assert ("Secret", source["secretRef"]["name"]) in manifests
            assert {env["name"] for env in container.get("env", [])} <= KNOWN_ENV


def test_k8s_service_and_migration_job_match_the_deployment(manifests):
    deployment, service, job = _one(manifests, "Deployment"), _one(manifests, "Service"), _one(manifests, "Job")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (web,) = deployment["spec"]["template"]["spec"]["containers"]
    port_names = {port["name"] for port in web["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert migrate["image"] == web["image"]
    assert migrate["command"][-2:] == ["migrate", "--noinput"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
