#!/usr/bin/python3
"""Checks the ECS definitions in container/ecs/ against what ECS accepts and
against the binaries they run. Standard library only (the end-to-end part runs
tests/integration/cw_standin.py, which needs Debian's python3-botocore, and is
skipped without it or without the built binaries).

  check_ecs.py [--root DIR] [--build DIR] [--no-run]

--root is the repository (default: two levels up from this file); --build holds
sgprobe-agent and sgprobe-collector (default $SGPROBE_BUILD, else ROOT/build).
Prints one line per check, tab-separated, for test_ecs_defs.sh to turn into TAP:

  ok<TAB>NAME
  not ok<TAB>NAME<TAB>WHY
  skip<TAB>NAME<TAB>WHY

Exits 0 when no check failed, 1 otherwise.

What is checked:
- every container/ecs/*.json is valid JSON, with only the keys the ECS API
  knows (RegisterTaskDefinition, ContainerDefinition, CreateService), so that a
  misspelt key is caught here and not by `aws ecs register-task-definition`;
- the fields ECS requires, with their types and ranges: names and images,
  memory, Fargate's task-level cpu/memory combinations, port mappings,
  health-check commands (CMD or CMD-SHELL) and timings, dependsOn conditions,
  secrets, awslogs options, stopTimeout <= 120;
- the sidecar's own rules: not essential, unprivileged, read-only root with a
  writable volume for what it writes, a stop timeout longer than the agent's;
- every SGPROBE_* variable is one the binary reads (agent/*.c, collector/main.c),
  the HMAC key comes only through `secrets`, the cluster is left to the task
  metadata, and the health checks are the binaries' real `health` subcommands;
- the pieces agree: the collector URL's port is the collector's listener, the
  port sgprobe-agents may reach in examples/afirgen.security-groups.json, and the
  port of the matrix's collector role; the service runs in the sgprobe-collector
  group;
- end to end, when the binaries are built: the config container's command
  (run as its user, root) writes the matrix and keys for uid 10001, the
  collector's check-matrix accepts the shipped matrix; the collector and the
  sidecar start as their users with exactly their definitions' environment
  (only addresses and paths moved onto loopback and a temporary directory), the
  sidecar takes its identity from a task metadata endpoint, both health checks
  pass, the
  collector's last flush on SIGTERM reaches a CloudWatch stand-in (SigV4
  checked by botocore) with the dimensions the alarms use, and both stop
  within their stopTimeout.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import http.server

# --- the ECS API's shapes (the members of each, as of 2025) -------------------------

CONTAINER_KEYS = {
    "name", "image", "repositoryCredentials", "cpu", "memory", "memoryReservation",
    "links", "portMappings", "essential", "restartPolicy", "entryPoint", "command",
    "environment", "environmentFiles", "mountPoints", "volumesFrom", "linuxParameters",
    "secrets", "dependsOn", "startTimeout", "stopTimeout", "versionConsistency",
    "hostname", "user", "workingDirectory", "disableNetworking", "privileged",
    "readonlyRootFilesystem", "dnsServers", "dnsSearchDomains", "extraHosts",
    "dockerSecurityOptions", "interactive", "pseudoTerminal", "dockerLabels", "ulimits",
    "logConfiguration", "healthCheck", "systemControls", "resourceRequirements",
    "firelensConfiguration", "credentialSpecs",
}
TASK_KEYS = {
    "family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions",
    "volumes", "placementConstraints", "requiresCompatibilities", "cpu", "memory", "tags",
    "pidMode", "ipcMode", "proxyConfiguration", "inferenceAccelerators",
    "ephemeralStorage", "runtimePlatform", "enableFaultInjection",
}
SERVICE_KEYS = {
    "cluster", "serviceName", "taskDefinition", "availabilityZoneRebalancing",
    "loadBalancers", "serviceRegistries", "desiredCount", "clientToken", "launchType",
    "capacityProviderStrategy", "platformVersion", "role", "deploymentConfiguration",
    "placementConstraints", "placementStrategy", "networkConfiguration",
    "healthCheckGracePeriodSeconds", "schedulingStrategy", "deploymentController",
    "tags", "enableECSManagedTags", "propagateTags", "enableExecuteCommand",
    "serviceConnectConfiguration", "volumeConfigurations", "vpcLatticeConfigurations",
}
HEALTH_KEYS = {"command", "interval", "timeout", "retries", "startPeriod"}
DEPENDS_CONDITIONS = {"START", "COMPLETE", "SUCCESS", "HEALTHY"}
# Docker's default capability set (what a container has unless it drops them).
DEFAULT_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID",
                "SYS_CHROOT"}
# Fargate's task sizes: cpu units -> the memory values (MiB) allowed with it.
FARGATE_SIZES = {
    256: [512, 1024, 2048],
    512: list(range(1024, 4097, 1024)),
    1024: list(range(2048, 8193, 1024)),
    2048: list(range(4096, 16385, 1024)),
    4096: list(range(8192, 30721, 1024)),
    8192: list(range(16384, 61441, 4096)),
    16384: list(range(32768, 122881, 8192)),
}
SECRET_ARN = re.compile(
    r"^arn:aws[a-z-]*:(secretsmanager:[a-z0-9-]+:\d{12}:secret:.+|ssm:[a-z0-9-]+:\d{12}:parameter/.+)$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")

results = []


def report(ok, name, why=""):
    results.append((ok, name, why))


def check(name, cond, why=""):
    report(bool(cond), name, "" if cond else why)
    return bool(cond)


def skip(name, why):
    results.append((None, name, why))


# --- what the binaries read -------------------------------------------------------------


def env_names_in(paths):
    names = set()
    for p in paths:
        with open(p, encoding="utf-8") as f:
            names |= set(re.findall(r'"(SGPROBE_[A-Z0-9_]+)"', f.read()))
    return names


def has_health_subcommand(main_c):
    with open(main_c, encoding="utf-8") as f:
        text = f.read()
    return re.search(r'strcmp\(argv\[1\],\s*"health"\)', text) is not None


def long_options(path):
    with open(path, encoding="utf-8") as f:
        return set(re.findall(r'\{"([a-z0-9-]+)",\s*(?:required|no|optional)_argument', f.read()))


# --- generic container checks -------------------------------------------------------------


def env_map(c):
    return {e.get("name"): e.get("value") for e in c.get("environment", [])}


def check_container_shape(where, c):
    unknown = sorted(set(c) - CONTAINER_KEYS)
    check(f"{where}: only ContainerDefinition keys", not unknown, f"unknown keys {unknown}")
    check(f"{where}: name and image are non-empty strings",
          isinstance(c.get("name"), str) and c["name"] and isinstance(c.get("image"), str)
          and c["image"], f"name={c.get('name')!r} image={c.get('image')!r}")
    for key in ("cpu", "memory", "memoryReservation", "stopTimeout", "startTimeout"):
        if key in c:
            check(f"{where}: {key} is a positive integer",
                  isinstance(c[key], int) and not isinstance(c[key], bool) and c[key] >= 0,
                  f"{key}={c[key]!r}")
    if "memory" in c and "memoryReservation" in c:
        check(f"{where}: memoryReservation <= memory", c["memoryReservation"] <= c["memory"],
              f"{c['memoryReservation']} > {c['memory']}")
    if "stopTimeout" in c:
        check(f"{where}: stopTimeout <= 120 s (ECS's maximum)", 0 < c["stopTimeout"] <= 120,
              f"stopTimeout={c['stopTimeout']}")
    env = c.get("environment", [])
    ok = isinstance(env, list) and all(
        isinstance(e, dict) and set(e) == {"name", "value"} and isinstance(e["name"], str)
        and isinstance(e["value"], str) for e in env)
    check(f"{where}: environment entries are {{name, value}} strings", ok, repr(env)[:200])
    names = [e.get("name") for e in env]
    check(f"{where}: no variable is set twice", len(names) == len(set(names)), repr(names))
    secrets = c.get("secrets", [])
    ok = isinstance(secrets, list) and all(
        isinstance(s, dict) and set(s) == {"name", "valueFrom"} and isinstance(s["name"], str)
        and isinstance(s["valueFrom"], str) and SECRET_ARN.match(s["valueFrom"])
        for s in secrets)
    check(f"{where}: secrets have a name and a Secrets Manager or SSM ARN in valueFrom", ok,
          repr(secrets)[:200])
    both = set(names) & {s.get("name") for s in secrets}
    check(f"{where}: no variable is both in environment and in secrets", not both, repr(both))
    for d in c.get("dependsOn", []):
        check(f"{where}: dependsOn {d.get('containerName')!r} has a valid condition",
              set(d) == {"containerName", "condition"} and d.get("condition") in DEPENDS_CONDITIONS,
              repr(d))
    for pm in c.get("portMappings", []):
        ok = all(isinstance(pm.get(k), int) and not isinstance(pm.get(k), bool)
                 and 1 <= pm[k] <= 65535 for k in ("containerPort",) + (("hostPort",) if "hostPort" in pm else ()))
        check(f"{where}: portMapping {pm.get('containerPort')!r} has integer ports", ok, repr(pm))
        # awsvpc: the host port is the container port, or absent.
        check(f"{where}: portMapping {pm.get('containerPort')!r}: hostPort equals containerPort (awsvpc)",
              pm.get("hostPort", pm.get("containerPort")) == pm.get("containerPort"), repr(pm))
        check(f"{where}: portMapping {pm.get('containerPort')!r}: protocol tcp",
              pm.get("protocol", "tcp") == "tcp", repr(pm))
    lc = c.get("logConfiguration", {})
    opts = lc.get("options", {})
    check(f"{where}: logs go to awslogs with a group, a region and a stream prefix",
          lc.get("logDriver") == "awslogs"
          and all(isinstance(opts.get(k), str) and opts[k] for k in
                  ("awslogs-group", "awslogs-region", "awslogs-stream-prefix")), repr(lc))
    hc = c.get("healthCheck")
    if hc is not None:
        cmd = hc.get("command", [])
        check(f"{where}: healthCheck has only HealthCheck keys", not set(hc) - HEALTH_KEYS,
              repr(sorted(set(hc) - HEALTH_KEYS)))
        check(f"{where}: healthCheck.command starts with CMD or CMD-SHELL",
              isinstance(cmd, list) and len(cmd) >= 2 and cmd[0] in ("CMD", "CMD-SHELL")
              and all(isinstance(x, str) for x in cmd), repr(cmd))
        ranges = {"interval": (5, 300), "timeout": (2, 60), "retries": (1, 10),
                  "startPeriod": (0, 300)}
        for k, (lo, hi) in ranges.items():
            if k in hc:
                check(f"{where}: healthCheck.{k} within {lo}-{hi}",
                      isinstance(hc[k], int) and lo <= hc[k] <= hi, repr(hc[k]))
        if "interval" in hc and "timeout" in hc:
            check(f"{where}: healthCheck.timeout < interval", hc["timeout"] < hc["interval"],
                  repr(hc))
    check(f"{where}: not privileged", c.get("privileged") is not True)
    caps = c.get("linuxParameters", {}).get("capabilities", {})
    check(f"{where}: no capability added", not caps.get("add"), repr(caps.get("add")))
    if c.get("user") in ("0", "0:0", "root"):
        # Only a short-lived helper may be root, and only with the two
        # capabilities a root writer of files for uid 10001 needs.
        dropped = set(caps.get("drop", []))
        check(f"{where}: root only to hand files to uid 10001: not essential, every default "
              f"capability but CHOWN and DAC_OVERRIDE dropped",
              c.get("essential") is False and "ALL" not in dropped
              and DEFAULT_CAPS - {"CHOWN", "DAC_OVERRIDE"} <= dropped,
              f"drop={sorted(dropped)} essential={c.get('essential')!r}")
    else:
        check(f"{where}: runs as the image's unprivileged user 10001:10001",
              c.get("user") == "10001:10001", repr(c.get("user")))
        check(f"{where}: drops every capability", caps.get("drop") == ["ALL"],
              repr(caps.get("drop")))
    check(f"{where}: read-only root filesystem", c.get("readonlyRootFilesystem") is True)
    rp = c.get("restartPolicy")
    if rp is not None:
        check(f"{where}: restartPolicy is valid",
              isinstance(rp.get("enabled"), bool)
              and all(isinstance(x, int) for x in rp.get("ignoredExitCodes", []))
              and len(rp.get("ignoredExitCodes", [])) <= 50
              and 60 <= rp.get("restartAttemptPeriod", 300) <= 1800, repr(rp))


def health_argv(c):
    """The health check as an argv (CMD form), or None."""
    cmd = c.get("healthCheck", {}).get("command", [])
    if len(cmd) >= 2 and cmd[0] == "CMD":
        return cmd[1:]
    if len(cmd) == 2 and cmd[0] == "CMD-SHELL":
        return cmd[1].split()
    return None


def writable_under(c, path, volumes):
    for mp in c.get("mountPoints", []):
        cp = mp.get("containerPath", "")
        if (path == cp or path.startswith(cp.rstrip("/") + "/")) and not mp.get("readOnly", False):
            return mp.get("sourceVolume") in volumes
    return False


def readable_under(c, path, volumes):
    for mp in c.get("mountPoints", []):
        cp = mp.get("containerPath", "")
        if path == cp or path.startswith(cp.rstrip("/") + "/"):
            return mp.get("sourceVolume") in volumes
    return False


def url_port(url):
    u = urllib.parse.urlsplit(url)
    return u.hostname, u.port or (443 if u.scheme == "https" else 80), u.scheme


def listen_port(value):
    return int(value.rsplit(":", 1)[1])


# --- the three files ----------------------------------------------------------------------


def check_sidecar(sc, volumes, agent_env, agent_opts, matrix, sg_port, collector_port):
    w = "agent-sidecar"
    check(f"{w}: one container definition (an object, to append to containerDefinitions)",
          isinstance(sc, dict), type(sc).__name__)
    if not isinstance(sc, dict):
        return
    check_container_shape(w, sc)
    check(f"{w}: runs as 10001:10001, the agent image's user", sc.get("user") == "10001:10001",
          repr(sc.get("user")))
    check(f"{w}: essential is false (a sidecar never stops the task)",
          sc.get("essential") is False, repr(sc.get("essential")))
    check(f"{w}: memory or memoryReservation (EC2 tasks need one)",
          "memory" in sc or "memoryReservation" in sc)
    deps = sc.get("dependsOn", [])
    check(f"{w}: dependsOn the main container (START or HEALTHY)",
          len(deps) == 1 and deps[0].get("condition") in ("START", "HEALTHY")
          and deps[0].get("containerName") != sc.get("name"), repr(deps))
    env = env_map(sc)
    secrets = {s.get("name"): s.get("valueFrom") for s in sc.get("secrets", [])}
    for n in list(env) + list(secrets):
        check(f"{w}: {n} is a variable sgprobe-agent reads", n in agent_env,
              "not in agent/*.c")
    for n in ("SGPROBE_ROLE", "SGPROBE_COLLECTOR", "SGPROBE_KEY_ID", "SGPROBE_HEALTH_FILE"):
        check(f"{w}: sets {n}", env.get(n), "missing or empty")
    check(f"{w}: the HMAC key SGPROBE_KEY comes from secrets, never from environment",
          "SGPROBE_KEY" in secrets and "SGPROBE_KEY" not in env and "SGPROBE_KEY_FILE" not in env,
          f"secrets={sorted(secrets)} environment={sorted(env)}")
    for n in ("SGPROBE_CLUSTER", "SGPROBE_AGENT_ID", "SGPROBE_AGENT_ADDRESS"):
        check(f"{w}: {n} is left to the task metadata endpoint", n not in env,
              f"{n}={env.get(n)!r} would override ECS_CONTAINER_METADATA_URI_V4")
    check(f"{w}: daemon mode (no SGPROBE_ONCE, no SGPROBE_MATRIX: the plan comes from the collector)",
          "SGPROBE_ONCE" not in env and "SGPROBE_MATRIX" not in env, repr(sorted(env)))
    roles = matrix.get("roles", {})
    role = env.get("SGPROBE_ROLE")
    check(f"{w}: SGPROBE_ROLE {role!r} is an agent role of examples/afirgen.matrix.json",
          role in roles and roles[role].get("agent") is True, repr(role))
    url = env.get("SGPROBE_COLLECTOR", "")
    host, port, scheme = url_port(url) if url else (None, None, None)
    check(f"{w}: SGPROBE_COLLECTOR is http(s)://host:port", scheme in ("http", "https") and host,
          repr(url))
    coll_roles = [r for r, v in roles.items() if host in v.get("endpoints", [])]
    check(f"{w}: the collector's host is the matrix's collector role endpoint",
          len(coll_roles) == 1 and port in roles[coll_roles[0]].get("ports", [])
          and roles[coll_roles[0]].get("agent") is False, f"{host}:{port} in {coll_roles}")
    if coll_roles and role in roles:
        allowed = any(a["from"] == role and a["to"] == coll_roles[0] and port in a["ports"]
                      for a in matrix.get("allow", []))
        check(f"{w}: the matrix allows {role} -> {coll_roles[0]}:{port} (the sidecar's own path)",
              allowed)
    check(f"{w}: the collector URL's port is the port sgprobe-agents may reach ({sg_port})",
          port == sg_port, f"{port} != {sg_port}")
    check(f"{w}: the collector URL's port is the collector's listener ({collector_port})",
          port == collector_port, f"{port} != {collector_port}")
    for mp in sc.get("mountPoints", []):
        check(f"{w}: mountPoint {mp.get('sourceVolume')!r} is in agent-sidecar-volumes.json",
              mp.get("sourceVolume") in volumes, repr(sorted(volumes)))
    for n in ("SGPROBE_HEALTH_FILE", "SGPROBE_PLAN_CACHE", "SGPROBE_JSON_FILE"):
        if n in env:
            check(f"{w}: {n} is on a writable volume (the root filesystem is read-only)",
                  writable_under(sc, env[n], volumes), env[n])
    argv = health_argv(sc)
    check(f"{w}: the health check runs `sgprobe-agent health` (exec form)",
          argv and os.path.basename(argv[0]) == "sgprobe-agent" and argv[1:2] == ["health"],
          repr(sc.get("healthCheck", {}).get("command")))
    if argv:
        flags = [a[2:] for a in argv[2:] if a.startswith("--")]
        check(f"{w}: the health check's flags are sgprobe-agent options",
              all(f in agent_opts for f in flags), repr(flags))
        hf = argv[argv.index("--health-file") + 1] if "--health-file" in argv else env.get(
            "SGPROBE_HEALTH_FILE")
        check(f"{w}: the health check reads the file the daemon writes",
              hf and hf == env.get("SGPROBE_HEALTH_FILE"), f"{hf!r} vs {env.get('SGPROBE_HEALTH_FILE')!r}")
    stop = int(env.get("SGPROBE_STOP_TIMEOUT_S", "10"))
    check(f"{w}: stopTimeout ({sc.get('stopTimeout')}) leaves the agent's --stop-timeout-s ({stop} s) room",
          isinstance(sc.get("stopTimeout"), int) and sc["stopTimeout"] > stop)
    hc = sc.get("healthCheck", {})
    check(f"{w}: the health check's grace covers a first round (startPeriod >= 60)",
          hc.get("startPeriod", 0) >= 60, repr(hc.get("startPeriod")))


def check_task(td, coll_env, coll_opts):
    w = "collector-task-definition"
    unknown = sorted(set(td) - TASK_KEYS)
    check(f"{w}: only RegisterTaskDefinition keys", not unknown, f"unknown keys {unknown}")
    check(f"{w}: family is set", isinstance(td.get("family"), str)
          and re.match(r"^[A-Za-z0-9_-]{1,255}$", td["family"]), repr(td.get("family")))
    check(f"{w}: networkMode awsvpc", td.get("networkMode") == "awsvpc")
    check(f"{w}: requiresCompatibilities FARGATE", td.get("requiresCompatibilities") == ["FARGATE"])
    try:
        cpu, mem = int(td.get("cpu")), int(td.get("memory"))
    except (TypeError, ValueError):
        cpu, mem = None, None
    check(f"{w}: task-level cpu and memory are strings (as the API returns them)",
          isinstance(td.get("cpu"), str) and isinstance(td.get("memory"), str))
    check(f"{w}: cpu {cpu} / memory {mem} is a valid Fargate size",
          cpu in FARGATE_SIZES and mem in FARGATE_SIZES[cpu])
    for k in ("executionRoleArn", "taskRoleArn"):
        check(f"{w}: {k} is an IAM role ARN", ROLE_ARN.match(td.get(k, "")), repr(td.get(k)))
    check(f"{w}: the task role and the execution role differ (least privilege)",
          td.get("executionRoleArn") != td.get("taskRoleArn"))
    rp = td.get("runtimePlatform", {})
    check(f"{w}: runtimePlatform is Linux", rp.get("operatingSystemFamily", "LINUX") == "LINUX")
    volumes = {v.get("name") for v in td.get("volumes", [])}
    check(f"{w}: volumes are bind mounts (no host path: Fargate's task storage)",
          all(set(v) == {"name"} for v in td.get("volumes", [])), repr(td.get("volumes")))
    cds = td.get("containerDefinitions", [])
    names = [c.get("name") for c in cds]
    check(f"{w}: containerDefinitions has unique names", len(names) == len(set(names)) and cds,
          repr(names))
    for c in cds:
        check_container_shape(f"{w}/{c.get('name')}", c)
        for mp in c.get("mountPoints", []):
            check(f"{w}/{c.get('name')}: mountPoint {mp.get('sourceVolume')!r} is a task volume",
                  mp.get("sourceVolume") in volumes)
        for d in c.get("dependsOn", []):
            check(f"{w}/{c.get('name')}: dependsOn {d.get('containerName')!r} exists",
                  d.get("containerName") in names)
            if d.get("condition") in ("SUCCESS", "COMPLETE"):
                dep = next((x for x in cds if x.get("name") == d.get("containerName")), {})
                check(f"{w}/{c.get('name')}: {d.get('containerName')!r} waited for with "
                      f"{d['condition']} is not essential (ECS requires it)",
                      dep.get("essential") is False)
    reserved = sum(c.get("memoryReservation", c.get("memory", 0)) for c in cds)
    check(f"{w}: the containers' reservations ({reserved} MiB) fit in the task's {mem} MiB",
          mem and reserved <= mem)
    essentials = [c for c in cds if c.get("essential", True)]
    check(f"{w}: exactly one essential container, the collector", len(essentials) == 1
          and essentials[0].get("name") == "sgprobe-collector", repr([c.get("name") for c in essentials]))
    coll = next((c for c in cds if c.get("name") == "sgprobe-collector"), None)
    if not coll:
        return None, None
    check(f"{w}/sgprobe-collector: runs as 10001:10001, the image's user",
          coll.get("user") == "10001:10001", repr(coll.get("user")))
    env = env_map(coll)
    for n in list(env) + [s.get("name") for s in coll.get("secrets", [])]:
        check(f"{w}/sgprobe-collector: {n} is a variable sgprobe-collector reads", n in coll_env,
              "not in collector/main.c")
    check(f"{w}/sgprobe-collector: SGPROBE_METRICS_SINK=cloudwatch",
          env.get("SGPROBE_METRICS_SINK") == "cloudwatch")
    check(f"{w}/sgprobe-collector: SGPROBE_REGION is set, and is the logs' region",
          env.get("SGPROBE_REGION")
          and env["SGPROBE_REGION"] == coll.get("logConfiguration", {}).get("options", {}).get("awslogs-region"))
    check(f"{w}/sgprobe-collector: SGPROBE_NAMESPACE is set", env.get("SGPROBE_NAMESPACE"))
    for n in ("SGPROBE_MATRIX", "SGPROBE_KEYS"):
        check(f"{w}/sgprobe-collector: {n} is a file on a task volume", env.get(n)
              and readable_under(coll, env[n], volumes), repr(env.get(n)))
    port = listen_port(env.get("SGPROBE_LISTEN", "0.0.0.0:9443"))
    check(f"{w}/sgprobe-collector: the agents' port {port} is mapped",
          [pm.get("containerPort") for pm in coll.get("portMappings", [])] == [port],
          repr(coll.get("portMappings")))
    admin = env.get("SGPROBE_ADMIN_LISTEN", "127.0.0.1:9090")
    check(f"{w}/sgprobe-collector: the admin listener stays on loopback, unmapped",
          admin.startswith("127.0.0.1:")
          and listen_port(admin) not in [pm.get("containerPort") for pm in coll.get("portMappings", [])],
          admin)
    argv = health_argv(coll)
    check(f"{w}/sgprobe-collector: the health check runs `sgprobe-collector health`",
          argv and os.path.basename(argv[0]) == "sgprobe-collector" and argv[1:2] == ["health"],
          repr(coll.get("healthCheck", {}).get("command")))
    if argv:
        flags = [a[2:] for a in argv[2:] if a.startswith("--")]
        check(f"{w}/sgprobe-collector: the health check's flags are sgprobe-collector options",
              all(f in coll_opts for f in flags), repr(flags))
        hl = argv[argv.index("--admin-listen") + 1] if "--admin-listen" in argv else admin
        check(f"{w}/sgprobe-collector: the health check asks the admin listener",
              listen_port(hl) == listen_port(admin), f"{hl} vs {admin}")
    check(f"{w}/sgprobe-collector: stopTimeout leaves the last flush its 5 s",
          coll.get("stopTimeout", 30) >= 10, repr(coll.get("stopTimeout")))
    # The config container: writes what the collector reads, from its own variables.
    for c in cds:
        if c is coll:
            continue
        text = " ".join(c.get("entryPoint", []) + c.get("command", []))
        for n in list(env_map(c)) + [s.get("name") for s in c.get("secrets", [])]:
            check(f"{w}/{c.get('name')}: {n} is used by its command", "$" + n in text or
                  "${" + n in text, text[:200])
        for n in ("SGPROBE_MATRIX", "SGPROBE_KEYS"):
            check(f"{w}/{c.get('name')}: its command writes {env.get(n)} on a writable volume",
                  env.get(n, "") in text and writable_under(c, env.get(n, ""), volumes))
        if "MATRIX_JSON" in env_map(c):
            try:
                json.loads(env_map(c)["MATRIX_JSON"])
                good = True
            except ValueError:
                good = False
            check(f"{w}/{c.get('name')}: MATRIX_JSON is JSON", good)
        keys = next((s for s in c.get("secrets", []) if s.get("name") == "KEYS_JSON"), None)
        check(f"{w}/{c.get('name')}: the keys (HMAC secrets) come from Secrets Manager",
              keys and ":secretsmanager:" in keys.get("valueFrom", ""), repr(keys))
    return td, port


def check_service(sv, td, sg_ids):
    w = "collector-service"
    unknown = sorted(set(sv) - SERVICE_KEYS)
    check(f"{w}: only CreateService keys", not unknown, f"unknown keys {unknown}")
    for k in ("cluster", "serviceName", "taskDefinition"):
        check(f"{w}: {k} is set", isinstance(sv.get(k), str) and sv[k], repr(sv.get(k)))
    fam = (td or {}).get("family")
    check(f"{w}: taskDefinition is the collector's family",
          sv.get("taskDefinition", "").split(":")[0].split("/")[-1] == fam,
          f"{sv.get('taskDefinition')!r} vs {fam!r}")
    dc = sv.get("desiredCount")
    check(f"{w}: desiredCount 1 (2 only behind an ALB with stickiness)",
          dc == 1 or (isinstance(dc, int) and dc > 1 and sv.get("loadBalancers")), repr(dc))
    check(f"{w}: launchType FARGATE", sv.get("launchType") == "FARGATE")
    check(f"{w}: platformVersion 1.4.0 or later (task ENI for pulls, secrets and logs)",
          sv.get("platformVersion", "LATEST") in ("LATEST", "1.4.0"), repr(sv.get("platformVersion")))
    aws = sv.get("networkConfiguration", {}).get("awsvpcConfiguration", {})
    check(f"{w}: subnets given", isinstance(aws.get("subnets"), list) and aws["subnets"]
          and all(re.match(r"^subnet-[0-9a-f]+$", s) for s in aws["subnets"]), repr(aws.get("subnets")))
    check(f"{w}: runs in the sgprobe-collector group only ({sg_ids.get('sgprobe-collector')})",
          aws.get("securityGroups") == [sg_ids.get("sgprobe-collector")], repr(aws.get("securityGroups")))
    check(f"{w}: assignPublicIp DISABLED", aws.get("assignPublicIp") == "DISABLED")
    dcfg = sv.get("deploymentConfiguration", {})
    check(f"{w}: deployments keep a collector up (minimumHealthyPercent 100, maximumPercent 200)",
          dcfg.get("minimumHealthyPercent") == 100 and dcfg.get("maximumPercent") == 200, repr(dcfg))
    check(f"{w}: the deployment circuit breaker rolls a failed deployment back",
          dcfg.get("deploymentCircuitBreaker") == {"enable": True, "rollback": True})
    check(f"{w}: no ECS Exec into the collector (it holds every agent's key)",
          sv.get("enableExecuteCommand") in (None, False))
    for r in sv.get("serviceRegistries", []):
        check(f"{w}: serviceRegistries name a Cloud Map service",
              re.match(r"^arn:aws[a-z-]*:servicediscovery:[a-z0-9-]+:\d{12}:service/srv-[0-9a-z]+$",
                       r.get("registryArn", "")), repr(r))


# --- end to end ---------------------------------------------------------------------------


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Metadata(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):
        if self.path.endswith("/task"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


def wait_for(pred, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.2)
    return False


def stop(proc, timeout):
    """SIGTERM, then the seconds until it exited (None: still running after timeout)."""
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
        return time.time() - t0
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def ids(c):
    """The uid and gid a container definition's user runs as (names: root only)."""
    user = c.get("user", "0")
    uid, _, gid = user.partition(":")
    uid = 0 if uid == "root" else int(uid)
    return uid, int(gid) if gid else uid


def as_user(c):
    uid, gid = ids(c)
    return {"user": uid, "group": gid, "extra_groups": []}


def end_to_end(root, build, sc, td, shared):
    agent, collector = os.path.join(build, "sgprobe-agent"), os.path.join(build, "sgprobe-collector")
    py = "/usr/bin/python3"
    need = [agent, collector]
    if not all(os.access(p, os.X_OK) for p in need):
        skip("end to end", f"no built binaries in {build}")
        return
    if os.geteuid() != 0:
        skip("end to end", "needs root: the containers run as their definitions' users (0 and 10001)")
        return
    if subprocess.run([py, "-c", "import botocore"], capture_output=True).returncode:
        skip("end to end", "/usr/bin/python3 has no botocore (python3-botocore)")
        return
    meta_doc = os.path.join(shared, "aws/ecs/task-metadata-v4.json")
    if not os.path.exists(meta_doc):
        skip("end to end", f"no {meta_doc}")
        return
    cds = {c["name"]: c for c in td["containerDefinitions"]}
    coll, init = cds["sgprobe-collector"], cds.get("sgprobe-config")
    work = tempfile.mkdtemp(prefix="sgprobe-ecs.")
    os.chmod(work, 0o755)
    # Each task's /run/sgprobe volume as ECS makes it from the images' VOLUME:
    # owned by 10001, mode 0700.
    run_dirs = {}
    for task in ("collector", "agent"):
        d = os.path.join(work, task + "-run")
        os.mkdir(d, 0o700)
        os.chown(d, 10001, 10001)
        run_dirs[task] = d
    procs = []
    P, A, S = free_port(), free_port(), free_port()
    moved = {}  # what the test moves, and nothing else

    def local(value, task):
        """A definition's value with its paths and addresses moved onto the test's."""
        v = value.replace("/run/sgprobe", run_dirs[task])
        v = v.replace("0.0.0.0:9443", f"127.0.0.1:{P}").replace("127.0.0.1:9090", f"127.0.0.1:{A}")
        v = re.sub(r"^(https?)://[^/:]+:9443", rf"\1://127.0.0.1:{P}", v)
        if v != value:
            moved[value] = v
        return v

    base = {"PATH": f"{build}:/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    try:
        # The metadata endpoint and the CloudWatch stand-in (also ECS credentials).
        Metadata.body = open(meta_doc, "rb").read()
        meta = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
        threading.Thread(target=meta.serve_forever, daemon=True).start()
        meta_uri = f"http://127.0.0.1:{meta.server_address[1]}/v4/0123456789abcdef-2812492219"
        region = env_map(coll)["SGPROBE_REGION"]
        record = os.path.join(work, "cw.jsonl")
        ready = os.path.join(work, "cw.ready")
        standin = subprocess.Popen(
            [py, os.path.join(root, "tests/integration/cw_standin.py"), "--listen", f"127.0.0.1:{S}",
             "--region", region, "--record", record, "--ecs-path", "/v2/credentials/collector-task",
             "--ready-file", ready], stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "cw.log"), "w"))
        procs.append(standin)
        if not check("e2e: the CloudWatch stand-in starts", wait_for(lambda: os.path.exists(ready), 10)):
            return

        # The config container, as its user, with the definition's own matrix and a
        # test keys document; then the collector, as its user, reads what it wrote.
        role, key_id = env_map(sc)["SGPROBE_ROLE"], env_map(sc)["SGPROBE_KEY_ID"]
        secret = "e2e-test-secret-not-a-real-key"
        keys_doc = json.dumps({"keys": [{"id": key_id, "secret": secret, "roles": [role]}]})
        matrix_file = local(env_map(coll)["SGPROBE_MATRIX"], "collector")
        if init:
            argv = [local(x, "collector") for x in init.get("entryPoint", []) + init.get("command", [])]
            env = dict(base, **{k: local(v, "collector") for k, v in env_map(init).items()}, KEYS_JSON=keys_doc)
            r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, **as_user(init))
            check(f"e2e: the config container (as uid {ids(init)[0]}) writes the matrix and the keys",
                  r.returncode == 0, f"exit {r.returncode}: {r.stderr.strip()[:300]}")
            for n in ("SGPROBE_MATRIX", "SGPROBE_KEYS"):
                p = local(env_map(coll)[n], "collector")
                st = os.stat(p) if os.path.exists(p) else None
                check(f"e2e: {os.path.basename(p)} belongs to the collector's user, which alone may read it",
                      st and (st.st_uid, st.st_gid) == ids(coll) and (st.st_mode & 0o277) == 0,
                      f"uid {st.st_uid} mode {oct(st.st_mode)}" if st else "missing")
            r = subprocess.run([collector, "check-matrix", matrix_file], env=base, capture_output=True,
                               text=True, timeout=30, **as_user(coll))
            check("e2e: sgprobe-collector check-matrix accepts the definition's MATRIX_JSON, as the collector's user",
                  r.returncode == 0, f"exit {r.returncode}: {(r.stderr or r.stdout).strip()[:300]}")
            # The rest runs on a loopback matrix with the sidecar's role: the shipped
            # one's names would be looked up in the host's DNS.
            loop = {"version": 1, "name": "e2e", "probe": {"ports": [9], "interval_s": 1, "timeout_ms": 200},
                    "roles": {role: {"endpoints": ["127.0.0.2"], "ports": [9], "agent": True},
                              "sgprobe-collector": {"endpoints": ["127.0.0.3"], "ports": [9443], "agent": False}},
                    "allow": [{"from": role, "to": "sgprobe-collector", "ports": [9443]}]}
            for f in (matrix_file, local(env_map(coll)["SGPROBE_KEYS"], "collector")):
                if os.path.exists(f):
                    os.unlink(f)
            env["MATRIX_JSON"] = json.dumps(loop)
            r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, **as_user(init))
            check("e2e: the config container writes a second matrix", r.returncode == 0, r.stderr[:300])

        # The collector: its definition's environment and user, the task role's
        # credentials from the (stand-in) ECS endpoint, CloudWatch at the stand-in.
        cenv = dict(base, **{k: local(v, "collector") for k, v in env_map(coll).items()})
        cenv["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = f"http://127.0.0.1:{S}/v2/credentials/collector-task"
        cenv["SGPROBE_CLOUDWATCH_ENDPOINT"] = f"http://127.0.0.1:{S}/"
        clog = open(os.path.join(work, "collector.log"), "w")
        cproc = subprocess.Popen([collector], env=cenv, stdout=clog, stderr=subprocess.STDOUT, **as_user(coll))
        procs.append(cproc)
        chealth = [local(x, "collector") for x in health_argv(coll)]
        ok = wait_for(lambda: subprocess.run(chealth, env=cenv, capture_output=True,
                                             **as_user(coll)).returncode == 0, 15)
        check(f"e2e: the collector (uid {ids(coll)[0]}) passes its health check", ok,
              open(clog.name).read()[-500:])

        # The sidecar: its definition's environment, user and secret, the task metadata.
        aenv = dict(base, **{k: local(v, "agent") for k, v in env_map(sc).items()})
        aenv["SGPROBE_KEY"] = secret
        aenv["ECS_CONTAINER_METADATA_URI_V4"] = meta_uri
        alog = open(os.path.join(work, "agent.log"), "w")
        aproc = subprocess.Popen([agent], env=aenv, stdout=alog, stderr=subprocess.STDOUT, **as_user(sc))
        procs.append(aproc)
        ahealth = [local(x, "agent") for x in health_argv(sc)]
        ok = wait_for(lambda: subprocess.run(ahealth, env=aenv, capture_output=True,
                                             **as_user(sc)).returncode == 0, 20)
        check(f"e2e: the sidecar (uid {ids(sc)[0]}) passes its health check after its first round", ok,
              open(alog.name).read()[-500:])

        view = {}

        def agent_seen():
            nonlocal view
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{A}/v1/matrix", timeout=2) as r:
                    view = json.load(r)
            except OSError:
                return False
            return any(a.get("role") == role for a in view.get("agents", []))
        ok = wait_for(agent_seen, 10)
        agents = view.get("agents", [])
        meta = json.load(open(meta_doc))
        check("e2e: the collector has the sidecar, identified by the task metadata",
              ok and agents[0].get("id") == meta["TaskARN"] and agents[0].get("cluster") == meta["Cluster"],
              repr(agents)[:300])

        # SIGTERM to the collector first: its last flush must carry the live sidecar.
        took = stop(cproc, coll.get("stopTimeout", 30))
        check(f"e2e: the collector exits within its stopTimeout ({coll.get('stopTimeout', 30)} s)",
              took is not None and cproc.returncode == 0, f"took {took}, exit {cproc.returncode}")
        calls = [json.loads(line) for line in open(record)] if os.path.exists(record) else []
        puts = [c for c in calls if not c.get("ecs") and c.get("status") == 200]
        ns = env_map(coll)["SGPROBE_NAMESPACE"]
        cluster = meta["Cluster"]
        metrics = [m for c in puts if c.get("namespace") == ns for m in c.get("metrics", [])]

        def has(name, dims, value=None):
            return any(m["name"] == name and m["dimensions"] == dims and (value is None or m["value"] == value)
                       for m in metrics)
        check(f"e2e: CloudWatch got PutMetricData in namespace {ns}, signed with the task role's credentials",
              puts and any(c.get("ecs") for c in calls), f"{len(calls)} calls")
        for name in ("UnexpectedOpenPaths", "BlockedPaths", "StaleAgents", "ReportingAgents"):
            check(f"e2e: {name} [Cluster={cluster}] is published (an alarm's metric)",
                  has(name, {"Cluster": cluster}))
        check(f"e2e: ReportingAgents [Cluster={cluster}, SourceRole={role}] = 1 (the missing-sidecar alarm's metric)",
              has("ReportingAgents", {"Cluster": cluster, "SourceRole": role}, 1),
              repr([m for m in metrics if m["name"] == "ReportingAgents"])[:300])

        took = stop(aproc, sc.get("stopTimeout", 30))
        check(f"e2e: the sidecar exits 0 within its stopTimeout ({sc.get('stopTimeout')} s), collector gone",
              took is not None and aproc.returncode == 0, f"took {took}, exit {aproc.returncode}")
        check("e2e: the test moved only addresses and paths", all(
            re.search(r"/run/sgprobe|9443|9090", k) for k in moved), repr(moved))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=os.path.normpath(os.path.join(here, "../..")))
    ap.add_argument("--build", default=None)
    ap.add_argument("--shared", default=None, help="the shared reference data (default ROOT/../shared)")
    ap.add_argument("--no-run", action="store_true", help="skip the end-to-end run")
    a = ap.parse_args()
    root = a.root
    build = a.build or os.environ.get("SGPROBE_BUILD") or os.path.join(root, "build")
    shared = a.shared or os.path.normpath(os.path.join(root, "../shared"))
    ecs = os.path.join(root, "container/ecs")

    docs = {}
    for f in sorted(os.listdir(ecs)) if os.path.isdir(ecs) else []:
        if f.endswith(".json"):
            try:
                with open(os.path.join(ecs, f), encoding="utf-8") as fh:
                    docs[f] = json.load(fh)
                report(True, f"{f} is valid JSON")
            except ValueError as e:
                report(False, f"{f} is valid JSON", str(e))
    for f in ("agent-sidecar.json", "agent-sidecar-volumes.json", "collector-task-definition.json",
              "collector-service.json"):
        check(f"container/ecs/{f} exists", f in docs)

    agent_env = env_names_in([os.path.join(root, "agent", f) for f in os.listdir(os.path.join(root, "agent"))
                              if f.endswith(".c")])
    coll_env = env_names_in([os.path.join(root, "collector/main.c")])
    check("sgprobe-agent has a health subcommand",
          has_health_subcommand(os.path.join(root, "agent/main.c")))
    check("sgprobe-collector has a health subcommand",
          has_health_subcommand(os.path.join(root, "collector/main.c")))
    agent_opts = long_options(os.path.join(root, "agent/config.c"))
    coll_opts = long_options(os.path.join(root, "collector/main.c"))

    with open(os.path.join(root, "examples/afirgen.matrix.json")) as f:
        matrix = json.load(f)
    with open(os.path.join(root, "examples/afirgen.security-groups.json")) as f:
        groups = json.load(f)["SecurityGroups"]
    sg_ids = {g["GroupName"]: g["GroupId"] for g in groups}
    sg_port = None
    for g in groups:
        if g["GroupName"] == "sgprobe-agents":
            ports = [p["FromPort"] for p in g["IpPermissionsEgress"]
                     if any(u["GroupId"] == sg_ids.get("sgprobe-collector") for u in p["UserIdGroupPairs"])]
            sg_port = ports[0] if len(ports) == 1 else None

    vols = docs.get("agent-sidecar-volumes.json", [])
    check("agent-sidecar-volumes: a list of bind-mount volumes (to append to the task's volumes)",
          isinstance(vols, list) and vols and all(isinstance(v, dict) and set(v) == {"name"} for v in vols),
          repr(vols))
    volumes = {v.get("name") for v in vols} if isinstance(vols, list) else set()

    # A document of the wrong shape must fail its checks, not crash the checker.
    def guarded(name, fn, *args):
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 (any shape error is a failed check)
            report(False, f"{name}: has the shape ECS expects", f"{type(e).__name__}: {e}")
            return None

    td, collector_port = None, None
    if "collector-task-definition.json" in docs:
        td, collector_port = guarded("collector-task-definition", check_task,
                                     docs["collector-task-definition.json"], coll_env,
                                     coll_opts) or (None, None)
    if "agent-sidecar.json" in docs:
        guarded("agent-sidecar", check_sidecar, docs["agent-sidecar.json"], volumes, agent_env,
                agent_opts, matrix, sg_port, collector_port)
    if "collector-service.json" in docs:
        guarded("collector-service", check_service, docs["collector-service.json"], td, sg_ids)

    if a.no_run:
        skip("end to end", "--no-run")
    elif td and "agent-sidecar.json" in docs and not any(r[0] is False for r in results):
        end_to_end(root, build, docs["agent-sidecar.json"], td, shared)
    else:
        skip("end to end", "the static checks failed")

    for ok, name, why in results:
        why = why.replace("\t", " ").replace("\n", " ")
        if ok is None:
            print(f"skip\t{name}\t{why}")
        elif ok:
            print(f"ok\t{name}")
        else:
            print(f"not ok\t{name}\t{why}")
    sys.stdout.flush()
    return 1 if any(r[0] is False for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
