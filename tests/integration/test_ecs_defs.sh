#!/bin/bash
# The ECS definitions in container/ecs/: check_ecs.py's checks as TAP (the fields
# ECS requires, the variables and health subcommands of the real binaries, the
# pieces agreeing with each other and with the examples, and, with the binaries
# built, the collector and the sidecar run on loopback from their definitions),
# then the same checker on broken copies, each of which it must reject.
. "$(dirname "$0")/../lib.sh"
set -u

py=/usr/bin/python3
[ -x "$py" ] || py=python3
checker="$top/tests/integration/check_ecs.py"
work=$(mktemp -d /tmp/sgprobe-ecsdefs.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM

# tap_from FILE: the checker's lines as TAP.
tap_from() {
	while IFS=$'\t' read -r status name why; do
		case $status in
		ok) ok "$name" ;;
		skip) ok "$name # SKIP $why" ;;
		*) not_ok "$name" "$why" ;;
		esac
	done <"$1"
}

"$py" "$checker" --root "$top" --build "$build" >"$work/out" 2>"$work/err"
rc=$?
tap_from "$work/out"
eq "check_ecs.py exits 0 on the shipped definitions" "$rc" 0
[ -s "$work/err" ] && sed 's/^/# /' "$work/err"

# A copy of what the checker reads, to break one thing at a time.
copy="$work/root"
mkdir -p "$copy/container" "$copy/agent" "$copy/collector" "$copy/examples"
cp -r "$top/container/ecs" "$copy/container/"
cp "$top"/agent/*.c "$copy/agent/"
cp "$top/collector/main.c" "$copy/collector/"
cp "$top"/examples/afirgen.matrix.json "$top"/examples/afirgen.security-groups.json "$copy/examples/"

# rejects WHAT FILE PYTHON EXPECTED: with PYTHON applied to the JSON `d` of FILE
# (in container/ecs), the checker must fail, on a check whose name holds EXPECTED.
rejects() {
	what=$1 file=$2 code=$3 expected=$4
	cp "$top/container/ecs/$file" "$work/saved.json"
	"$py" - "$copy/container/ecs/$file" "$code" <<'EOF'
import json, sys
path, code = sys.argv[1], sys.argv[2]
d = json.load(open(path))
exec(code)
json.dump(d, open(path, "w"), indent=2)
EOF
	"$py" "$checker" --root "$copy" --no-run >"$work/bad" 2>&1
	brc=$?
	if [ "$brc" -eq 1 ] && grep -F -q -- "$expected" <(grep '^not ok' "$work/bad"); then
		ok "rejects $what"
	else
		not_ok "rejects $what" "exit $brc; failures: $(grep '^not ok' "$work/bad" | cut -f2 | tr '\n' ';')"
	fi
	cp "$work/saved.json" "$copy/container/ecs/$file"
}

rejects "an essential sidecar" agent-sidecar.json \
	'd["essential"] = True' "essential is false"
rejects "the HMAC key in plain environment" agent-sidecar.json \
	'd["secrets"] = []; d["environment"].append({"name": "SGPROBE_KEY", "value": "s3cret"})' \
	"comes from secrets"
rejects "a variable the agent does not read" agent-sidecar.json \
	'd["environment"][1]["name"] = "SGPROBE_COLECTOR"' "SGPROBE_COLECTOR is a variable sgprobe-agent reads"
rejects "a fixed cluster (the metadata's must win)" agent-sidecar.json \
	'd["environment"].append({"name": "SGPROBE_CLUSTER", "value": "prod"})' "SGPROBE_CLUSTER is left"
rejects "a health check that is not the agent's health subcommand" agent-sidecar.json \
	'd["healthCheck"]["command"] = ["CMD", "sgprobe-agent", "--once"]' "runs \`sgprobe-agent health\`"
rejects "a health check reading another file than the daemon writes" agent-sidecar.json \
	'd["healthCheck"]["command"][-1] = "/tmp/health.json"' "reads the file the daemon writes"
rejects "a stop timeout shorter than the agent's" agent-sidecar.json \
	'd["stopTimeout"] = 10' "leaves the agent's --stop-timeout-s"
rejects "a stop timeout above ECS's 120 s" agent-sidecar.json \
	'd["stopTimeout"] = 200' "stopTimeout <= 120"
rejects "an unknown dependsOn condition" agent-sidecar.json \
	'd["dependsOn"][0]["condition"] = "RUNNING"' "has a valid condition"
rejects "awslogs without a stream prefix" agent-sidecar.json \
	'del d["logConfiguration"]["options"]["awslogs-stream-prefix"]' "stream prefix"
rejects "a misspelt key" agent-sidecar.json \
	'd["stoptimeout"] = d.pop("stopTimeout")' "only ContainerDefinition keys"
rejects "an added capability" agent-sidecar.json \
	'd["linuxParameters"]["capabilities"]["add"] = ["NET_RAW"]' "no capability added"
rejects "a health file on the read-only root" agent-sidecar.json \
	'd["mountPoints"] = []' "is on a writable volume"
rejects "a collector URL on another port than the groups allow" agent-sidecar.json \
	'd["environment"][1]["value"] = "http://collector.afirgen.internal:8443"' "port sgprobe-agents may reach"
rejects "a Fargate size that does not exist" collector-task-definition.json \
	'd["memory"] = "768"' "valid Fargate size"
rejects "a health check in neither CMD nor CMD-SHELL form" collector-task-definition.json \
	'd["containerDefinitions"][1]["healthCheck"]["command"][0] = "RUN"' "starts with CMD or CMD-SHELL"
rejects "a port mapping given as a string" collector-task-definition.json \
	'd["containerDefinitions"][1]["portMappings"][0]["containerPort"] = "9443"' "integer ports"
rejects "a secret without valueFrom" collector-task-definition.json \
	'd["containerDefinitions"][0]["secrets"][0] = {"name": "KEYS_JSON"}' "secrets have a name"
rejects "an essential config container waited for with SUCCESS" collector-task-definition.json \
	'd["containerDefinitions"][0]["essential"] = True' "is not essential"
rejects "a collector variable that does not exist" collector-task-definition.json \
	'd["containerDefinitions"][1]["environment"].append({"name": "SGPROBE_SINK", "value": "x"})' \
	"SGPROBE_SINK is a variable sgprobe-collector reads"
rejects "the admin listener exposed by a port mapping" collector-task-definition.json \
	'd["containerDefinitions"][1]["portMappings"].append({"containerPort": 9090, "hostPort": 9090, "protocol": "tcp"})' \
	"agents' port 9443 is mapped"
rejects "a root config container that keeps every capability" collector-task-definition.json \
	'd["containerDefinitions"][0]["linuxParameters"]["capabilities"]["drop"] = ["NET_RAW"]' "root only to hand files"
rejects "a sidecar running as root" agent-sidecar.json \
	'd["user"] = "0"' "runs as 10001:10001"
rejects "a collector keeping its capabilities" collector-task-definition.json \
	'del d["containerDefinitions"][1]["linuxParameters"]' "drops every capability"
rejects "a config container whose variables its command ignores" collector-task-definition.json \
	'd["containerDefinitions"][0]["environment"].append({"name": "UNUSED", "value": "x"})' "UNUSED is used by its command"
rejects "a collector service in the agents' group" collector-service.json \
	'd["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"] = ["sg-05e1a3c5d7f9b2a0b"]' \
	"sgprobe-collector group only"
rejects "two collectors without a sticky load balancer" collector-service.json \
	'd["desiredCount"] = 2' "desiredCount 1"
rejects "a public IP on the collector" collector-service.json \
	'd["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] = "ENABLED"' "assignPublicIp DISABLED"

printf '{"name": broken' >"$copy/container/ecs/broken.json"
"$py" "$checker" --root "$copy" --no-run >"$work/bad" 2>&1
brc=$?
if [ "$brc" -eq 1 ] && grep -q $'^not ok\tbroken.json is valid JSON' "$work/bad"; then
	ok "rejects a file that is not JSON"
else
	not_ok "rejects a file that is not JSON" "exit $brc"
fi
rm -f "$copy/container/ecs/broken.json"

done_testing
