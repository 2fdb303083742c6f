"""A deterministic corpus of CrowdStrike Falcon events (NDJSON) for benchmarking ``cqlx run``.

Mostly ``ProcessRollup2`` from a fleet of Windows, Linux and macOS hosts, with the field set,
field sizes and process mix of real sensor data (svchost and browser renderers with kilobyte
command lines, PowerShell with encoded commands, runc probes on Kubernetes nodes, coreutils from
cron and shells, Spotlight workers on Macs ...), in both shapes cqlx reads: LogScale exports
(``#event_simpleName``, ``@timestamp``, ``#repo``) and raw Falcon Data Replicator records
(``event_simpleName``, ``name``, ``timestamp``). About 14% are other event types (DnsRequest,
NetworkConnectIP4, EndOfProcess, UserLogon, SyntheticProcessRollup2).

About 1% is container-tool activity (docker, kubectl, crictl, ctr, podman, nerdctl) spread over
the seed rule's risk dimensions the way a fleet produces them: mostly read-only commands and
routine runs/applies, fewer exec sessions, rare privileged flags, host mounts, secrets listing and
escapes, and the near misses the rule must not take (``-V``, ``--volume``, ``--network=host``,
``docker-compose``, ``containerd-ctr``, Windows ``docker.exe``, ``bash -c "docker run ..."``,
``SyntheticProcessRollup2``, a lower-case event name).

Timestamps strictly increase (at least 1 ms apart), so ``timestamp`` identifies an event; the
benchmark uses it to compare engines' match sets. The same ``--seed`` always writes the same bytes;
another seed gives an independent corpus (other hosts, users, command lines, containers).

    python bench/generate_events.py --events 1000000 --seed 1 --output bench/data/events.ndjson
"""

from __future__ import annotations

import argparse
import base64
import json
import json.encoder
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

GENERATOR_VERSION = 1
CONTAINER_SHARE = 0.01
DEFAULT_EVENTS = 1_000_000
BATCH = 4096

Rng = random.Random
T = TypeVar("T")


def enc(value: str) -> str:
    """A JSON string literal, UTF-8 kept as is (as the sensor writes it): json.dumps(value,
    ensure_ascii=False), without its per-call set-up."""
    return ENCODE(value)


ENCODE: Callable[[str], str] = json.encoder.encode_basestring


def hexs(rng: Rng, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def guid(rng: Rng) -> str:
    h = hexs(rng, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[rng.getrandbits(2)]}{h[17:20]}-{h[20:]}"


def pick(rng: Rng, items: Sequence[T]) -> T:
    return items[int(rng.random() * len(items))]


def weighted_table(weights: Sequence[float], size: int = 4096) -> list[int]:
    """Indices repeated in proportion to their weights: a weighted choice is one table lookup."""
    total = sum(weights)
    table: list[int] = []
    for index, weight in enumerate(weights):
        table.extend([index] * max(1, round(weight / total * size)))
    return table


# ---------------------------------------------------------------------------------------------- words

SYLLABLES = ("an", "ar", "ba", "be", "co", "da", "de", "el", "en", "fa", "ga", "ha", "in", "ka", "ki", "la",
             "le", "ma", "mi", "na", "no", "or", "pa", "ra", "re", "sa", "se", "ta", "ti", "to", "va", "ze")
FIRST = ("james", "mary", "john", "patricia", "robert", "jennifer", "michael", "linda", "david", "elizabeth",
         "william", "barbara", "richard", "susan", "joseph", "jessica", "thomas", "sarah", "wei", "priya",
         "ahmed", "olga", "jürgen", "josé", "søren", "françois", "noor", "kenji", "ana", "lucas", "emma", "liam")
LAST = ("smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez", "martinez",
        "nguyen", "patel", "kim", "müller", "schmidt", "rossi", "dubois", "kowalski", "tanaka", "silva", "cohen")
WORDS = ("report", "budget", "invoice", "notes", "draft", "final", "q3", "summary", "plan", "roadmap", "export",
         "backup", "data", "config", "deploy", "release", "test", "build", "metrics", "audit", "customer")
IMAGES = ("alpine", "alpine:3.19", "ubuntu:22.04", "debian:bookworm-slim", "busybox", "nginx:1.25", "nginx:alpine",
          "redis:7", "postgres:16", "python:3.11-slim", "node:20-alpine", "golang:1.22", "bitnami/kubectl:1.29",
          "nicolaka/netshoot", "curlimages/curl:8.5.0", "registry.internal.example.com/platform/api:2.14.1",
          "ghcr.io/acme/worker:sha-3f9c1e2", "quay.io/prometheus/node-exporter:v1.7.0", "hashicorp/terraform:1.7",
          "amazon/aws-cli:2.15.10", "mcr.microsoft.com/dotnet/sdk:8.0", "grafana/grafana:10.2.3")
NAMESPACES = ("default", "kube-system", "prod", "staging", "dev", "monitoring", "ingress-nginx", "argocd",
              "cert-manager", "payments", "data-pipeline", "istio-system", "logging", "ci")
APPS = ("api", "web", "worker", "frontend", "backend", "redis", "postgres", "kafka", "payments", "auth",
        "gateway", "scheduler", "ingest", "search", "notifier", "billing", "etl", "metrics")


def word(rng: Rng, syllables: int = 3) -> str:
    return "".join(pick(rng, SYLLABLES) for _ in range(syllables))


def pod(rng: Rng) -> str:
    return f"{pick(rng, APPS)}-{hexs(rng, 10)[:9]}-{hexs(rng, 5)}"


def b64(rng: Rng, nbytes: int) -> str:
    return base64.b64encode(rng.getrandbits(8 * nbytes).to_bytes(nbytes, "little")).decode()


# ---------------------------------------------------------------------------------------------- hosts


@dataclass(frozen=True)
class User:
    name: str
    sid: str | None  # Windows only
    uid: int | None  # Linux and macOS
    fragment: str = ""  # the user's JSON members, pre-encoded

    def __post_init__(self) -> None:
        text = f'"UserName": {enc(self.name)}, '
        if self.sid is not None:
            text += f'"UserSid": "{self.sid}", "AuthenticationId": "{999 if self.sid == "S-1-5-18" else 3_000_000}", '
        else:
            text += f'"UID": "{self.uid}", "RUID": "{self.uid}", "GID": "{self.uid}", '
        object.__setattr__(self, "fragment", text)


@dataclass(frozen=True)
class Host:
    platform: str  # Win, Lin, Mac
    role: str
    fragment: str  # the host's JSON members, pre-encoded
    users: tuple[User, ...]
    primary: User
    home: str


def _host(rng: Rng, platform: str, role: str, index: int, cids: Sequence[str]) -> Host:
    if platform == "Win":
        stem = word(rng, 2).upper()
        name = {"desktop": f"WKS-{stem}-{index:04d}", "server": f"SRV-{stem}{index:03d}",
                "dev": f"DEV-{stem}-{index:04d}"}[role]
        domain = f"S-1-5-21-{rng.getrandbits(31)}-{rng.getrandbits(31)}-{rng.getrandbits(31)}"
        person = f"{pick(rng, FIRST)}.{pick(rng, LAST)}"
        primary = User(person, f"{domain}-{1000 + rng.getrandbits(12)}", None)
        users: tuple[User, ...] = (primary, User("SYSTEM", "S-1-5-18", None), User("LOCAL SERVICE", "S-1-5-19", None),
                 User("NETWORK SERVICE", "S-1-5-20", None), User(f"svc_{word(rng, 2)}", f"{domain}-{1100 + index}",
                                                                 None))
        home = f"C:\\Users\\{person}"
        build, version = f"1007.3.00{rng.getrandbits(14) + 17000}.1", "Win"
    elif platform == "Lin":
        prefix = {"k8s-worker": "k8s-worker", "k8s-ctl": "k8s-ctl", "build": "ci-runner", "server": "srv",
                  "dev": "dev-ws"}[role]
        name = f"{prefix}-{word(rng, 2)}-{index:03d}" if role != "dev" else f"{prefix}-{pick(rng, FIRST)}-{index:03d}"
        person = pick(rng, ("ubuntu", "ec2-user", "admin", "devops", "deploy", pick(rng, FIRST)))
        service = {"build": "gitlab-runner", "k8s-worker": "root", "k8s-ctl": "devops"}.get(role, "www-data")
        primary = User(person, None, 1000 + rng.getrandbits(8))
        users = (User("root", None, 0), primary, User(service, None, 999 if service != "root" else 0),
                 User("nobody", None, 65534), User("systemd-network", None, 100))
        home = f"/home/{person}"
        build, version = f"1007.8.00{rng.getrandbits(14) + 17000}.1", "Lin"
    else:
        person = f"{pick(rng, FIRST)}{pick(rng, LAST)[:1]}"
        name = f"{person}-mbp-{index:03d}" if role == "dev" else f"MAC-{word(rng, 2).upper()}-{index:03d}"
        primary = User(person, None, 501)
        users = (primary, User("root", None, 0), User("_spotlight", None, 89), User("_mdnsresponder", None, 65))
        home = f"/Users/{person}"
        build, version = f"1007.4.00{rng.getrandbits(14) + 17000}.1", "Mac"
    aid = hexs(rng, 32)
    aip = f"{pick(rng, ('10', '172', '192'))}.{rng.getrandbits(8)}.{rng.getrandbits(8)}.{1 + rng.getrandbits(7)}"
    fragment = (f'"aid": "{aid}", "aip": "{aip}", "cid": "{pick(rng, cids)}", "event_platform": "{version}", '
                f'"ComputerName": {enc(name)}, "ConfigBuild": "{build}", "ConfigStateHash": "{rng.getrandbits(32)}", '
                f'"Entitlements": "15", ')
    return Host(platform, role, fragment, users, primary, home)


FLEET_MIX = (("Win", "desktop", 46), ("Win", "server", 9), ("Win", "dev", 5), ("Lin", "server", 14),
             ("Lin", "k8s-worker", 8), ("Lin", "k8s-ctl", 2), ("Lin", "build", 3), ("Lin", "dev", 3),
             ("Mac", "desktop", 6), ("Mac", "dev", 4))


def make_fleet(rng: Rng, count: int) -> list[Host]:
    cids = [hexs(rng, 32) for _ in range(3)]
    table = weighted_table([w for _, _, w in FLEET_MIX])
    hosts = []
    for index in range(count):
        platform, role, _ = FLEET_MIX[table[int(rng.random() * len(table))]]
        hosts.append(_host(rng, platform, role, index, cids))
    return hosts


# ---------------------------------------------------------------------------------------------- processes

CmdGen = Callable[[Rng, Host], str]


@dataclass(frozen=True)
class Proc:
    """A process kind: image path (Falcon's form), command-line generator, parents, whose it is."""

    image: str  # "" for /usr/bin/ and the command's first word
    cmd: CmdGen
    parents: tuple[str, ...]
    weight: float
    who: str = "person"  # person, system, service, root, any
    fresh: bool = False  # a new command line per event (ids, handles, tokens in it), not one from a pool


UTILITY_SERVICES = ("network.mojom.NetworkService", "storage.mojom.StorageService", "audio.mojom.AudioService",
                    "data_decoder.mojom.DataDecoderService")


def _chromium(exe: str) -> CmdGen:
    def gen(rng: Rng, host: Host) -> str:
        kind = pick(rng, ("renderer", "renderer", "renderer", "utility", "gpu-process", "crashpad-handler"))
        parts = [f'"{exe}"', f"--type={kind}"]
        if kind == "utility":
            parts.append(f"--utility-sub-type={pick(rng, UTILITY_SERVICES)}")
            parts.append("--lang=en-US --service-sandbox-type=none")
        elif kind == "renderer":
            parts.append("--extension-process" if rng.random() < 0.2 else "--lang=en-US")
            parts.append(f"--device-scale-factor={pick(rng, ('1', '1.25', '1.5', '2'))} --num-raster-threads=4 "
                         "--enable-main-frame-before-activation")
            parts.append(f"--renderer-client-id={rng.getrandbits(9)} --time-ticks-at-unix-epoch=-{rng.getrandbits(50)} "
                         f"--launch-time-ticks={rng.getrandbits(40)}")
            if rng.random() < 0.5:
                trials = ",".join(pick(rng, ("WebViewXRequestedWithHeaderControl", "PrivacySandboxAdsAPIs",
                                             "BackForwardCacheMemoryControls", "SpeculationRulesPrefetchFuture",
                                             "CompressionDictionaryTransport", "FencedFrames", "AttributionReporting"))
                                  for _ in range(1 + rng.getrandbits(3)))
                parts.append(f"--origin-trial-disabled-features={trials}")
        elif kind == "crashpad-handler":
            parts.append(f'"--user-data-dir={host.home}\\AppData\\Local\\Google\\Chrome\\User Data" '
                         f'/prefetch:7 --monitor-self-annotation=ptype=crashpad-handler '
                         f'"--database={host.home}\\AppData\\Local\\Google\\Chrome\\User Data\\Crashpad" '
                         '--url=https://clients2.google.com/cr/report --annotation=channel= --annotation=plat=Win64 '
                         f'--annotation=prod=Chrome --annotation=ver=12{rng.getrandbits(3)}.0.6{rng.getrandbits(9)}.'
                         f'{rng.getrandbits(7)}')
        parts.append(f"--field-trial-handle={1800 + rng.getrandbits(8)},i,{rng.getrandbits(60)},"
                     f"{rng.getrandbits(60)},262144")
        if rng.random() < 0.6:
            parts.append("--variations-seed-version=20240618-180141.543000")
        parts.append(f"--mojo-platform-channel-handle={rng.getrandbits(12)} /prefetch:{1 + rng.getrandbits(3)}")
        return " ".join(parts)

    return gen


def _svchost(rng: Rng, host: Host) -> str:
    group, service = pick(rng, (("netsvcs", "Schedule"), ("netsvcs", "gpsvc"), ("netsvcs", "Winmgmt"),
                                ("LocalServiceNetworkRestricted", "Dhcp"), ("DcomLaunch", "PlugPlay"),
                                ("NetworkService", "Dnscache"), ("LocalSystemNetworkRestricted", "SysMain"),
                                ("UnistackSvcGroup", "CDPUserSvc"), ("wsappx", "AppXSvc"),
                                ("appmodel", "StateRepository"),
                                ("LocalService", "EventSystem"), ("utcsvc", "DiagTrack")))
    if rng.random() < 0.15:
        return f"C:\\Windows\\system32\\svchost.exe -k {group}"
    return f"C:\\Windows\\system32\\svchost.exe -k {group} -p -s {service}"


def _conhost(rng: Rng, host: Host) -> str:
    return pick(rng, ("\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1",
                      "\\??\\C:\\Windows\\system32\\conhost.exe 0x4", "C:\\Windows\\system32\\conhost.exe"))


def _cmd(rng: Rng, host: Host) -> str:
    doc = f"{host.home}\\Documents\\{pick(rng, WORDS)}_{pick(rng, WORDS)}.xlsx"
    return pick(rng, (
        'C:\\Windows\\system32\\cmd.exe /d /s /c "git config --get remote.origin.url"',
        f'C:\\Windows\\system32\\cmd.exe /c ""C:\\Program Files\\{word(rng)}\\update.bat" /silent"',
        f"C:\\Windows\\system32\\cmd.exe /c echo {hexs(rng, 8)} > \\\\.\\pipe\\{word(rng)}_{rng.getrandbits(16)}",
        f'cmd.exe /c copy "{doc}" "\\\\fs01\\share\\{pick(rng, FIRST)}\\"',
        "C:\\Windows\\system32\\cmd.exe /c ipconfig /all",
        f"C:\\Windows\\System32\\cmd.exe /c tasklist /FI \"IMAGENAME eq {word(rng)}.exe\" /NH",
        "\"C:\\Windows\\system32\\cmd.exe\" /c \"npm run build --if-present\"",
    ))


def _powershell(rng: Rng, host: Host) -> str:
    exe = '"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"'
    roll = rng.random()
    if roll < 0.45:
        size = int(60 + rng.random() ** 3 * 1800)
        return f"{exe} -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand {b64(rng, size)}"
    if roll < 0.75:
        cim = pick(rng, ("Process", "Service", "LogicalDisk", "OperatingSystem"))
        prop = pick(rng, ("ProcessId", "State", "FreeSpace", "Version"))
        return (f"{exe} -NoLogo -NoProfile -Command \"& {{Get-CimInstance -ClassName Win32_{cim} "
                f"| Select-Object -Property Name,{prop} | ConvertTo-Json -Compress}}\"")
    if roll < 0.9:
        vendor = pick(rng, ("Intune", "SCCM", "Tanium", "Scripts"))
        return (f"{exe} -ExecutionPolicy RemoteSigned -File \"C:\\ProgramData\\{vendor}"
                f"\\{word(rng)}\\{pick(rng, WORDS)}-{hexs(rng, 8)}.ps1\"")
    return f"{exe} -noexit -command Set-Location -literalPath '{host.home}\\source\\repos\\{word(rng)}'"


def _dllhost(rng: Rng, host: Host) -> str:
    return f"C:\\Windows\\system32\\DllHost.exe /Processid:{{{guid(rng).upper()}}}"


def _search_protocol(rng: Rng, host: Host) -> str:
    n = 10 + rng.getrandbits(5)
    return (f'"C:\\Windows\\system32\\SearchProtocolHost.exe" Global\\UsGthrFltPipeMssGthrPipe{n}_ '
            f'Global\\UsGthrCtrlFltPipeMssGthrPipe{n} 1 -2147483646 "Software\\Microsoft\\Windows Search" '
            '"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT; MS Search 4.0 Robot)" '
            '"C:\\ProgramData\\Microsoft\\Search\\Data\\Temp\\usgthrsvc" "DownLevelDaemon"')


def _simple(*commands: str) -> CmdGen:
    def gen(rng: Rng, host: Host) -> str:
        return pick(rng, commands).format(home=host.home, user=host.primary.name, hex=hexs(rng, 8),
                                          n=rng.getrandbits(16), word=word(rng), guid=guid(rng), w=pick(rng, WORDS))

    return gen


def _teams(rng: Rng, host: Host) -> str:
    kind = pick(rng, ("renderer", "gpu-process", "utility"))
    return (f'"{host.home}\\AppData\\Local\\Microsoft\\Teams\\current\\Teams.exe" --type={kind} '
            f'--user-data-dir="{host.home}\\AppData\\Roaming\\Microsoft\\Teams" --no-sandbox '
            '--autoplay-policy=no-user-gesture-required --lang=en-US '
            f'--app-path="{host.home}\\AppData\\Local\\Microsoft\\Teams\\current\\resources\\app.asar" '
            f'--mojo-platform-channel-handle={rng.getrandbits(12)} '
            f'--field-trial-handle={rng.getrandbits(12)},{rng.getrandbits(60)},{rng.getrandbits(60)},131072 '
            '/prefetch:1')


def _code(rng: Rng, host: Host) -> str:
    exe = f"{host.home}\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe"
    if rng.random() < 0.5:
        return (f'"{exe}" --type=utility --utility-sub-type=node.mojom.NodeService --lang=en-US '
                f'--service-sandbox-type=none --user-data-dir="{host.home}\\AppData\\Roaming\\Code" '
                '--standard-schemes=vscode-webview,vscode-file --secure-schemes=vscode-webview,vscode-file '
                '--cors-schemes=vscode-webview,vscode-file --fetch-schemes=vscode-webview,vscode-file '
                f'--mojo-platform-channel-handle={rng.getrandbits(12)} --field-trial-handle={rng.getrandbits(12)},i,'
                f'{rng.getrandbits(60)},{rng.getrandbits(60)},262144 /prefetch:8')
    return f'"{exe}" "{host.home}\\source\\repos\\{word(rng)}" --folder-uri file:///c%3A/Users/{word(rng)}'


JAVA_MAINS = ("kafka.Kafka", "org.elasticsearch.bootstrap.Elasticsearch", "hudson.Main", "com.acme.Main")


def _java(rng: Rng, host: Host) -> str:
    base = pick(rng, ("/opt/kafka", "/opt/elasticsearch", "/opt/jenkins", "/opt/app", "/usr/share/logstash"))
    jars = ":".join(f"{base}/libs/{pick(rng, WORDS)}-{pick(rng, APPS)}-{rng.getrandbits(3)}.{rng.getrandbits(4)}."
                    f"{rng.getrandbits(3)}.jar" for _ in range(5 + int(rng.random() ** 2 * 60)))
    heap = pick(rng, ("512m", "1g", "2g", "4g", "8g"))
    return (f"/usr/lib/jvm/java-17-openjdk-amd64/bin/java -Xms{heap} -Xmx{heap} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 "
            "-XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true "
            f"-Dcom.sun.management.jmxremote.port={9000 + rng.getrandbits(8)} -Dlog4j2.formatMsgNoLookups=true "
            f"-cp {jars} {pick(rng, JAVA_MAINS)} "
            f"{base}/config/{pick(rng, ('server', 'app', 'node'))}.properties")


def _runc(rng: Rng, host: Host) -> str:
    task = hexs(rng, 64)
    return (f"runc --root /run/containerd/runc/k8s.io --log /run/containerd/io.containerd.runtime.v2.task/k8s.io/{task}"
            f"/log.json --log-format json exec --process /tmp/runc-process{rng.getrandbits(30)} --detach --pid-file "
            f"/run/containerd/io.containerd.runtime.v2.task/k8s.io/{task}/{hexs(rng, 64)}.pid {task}")


def _shim(rng: Rng, host: Host) -> str:
    return (f"/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id {hexs(rng, 64)} "
            "-address /run/containerd/containerd.sock")


COREUTILS = {
    "ps": ("ps -eo pid,ppid,user,%cpu,%mem,cmd --sort=-%cpu", "ps -p {pid} -o etimes=", "ps aux", "ps -ef"),
    "cat": ("cat /proc/{pid}/status", "cat /proc/{pid}/cmdline", "cat /sys/fs/cgroup/memory.max",
            "cat /etc/{app}/config.yaml", "cat"),
    "grep": ("grep -E '^(MemTotal|MemAvailable):' /proc/meminfo", "grep -c processor /proc/cpuinfo",
             "grep -q {app} /etc/passwd", "grep -rl --include=*.log ERROR /var/log/{app}", "grep -v '^#'"),
    "sleep": ("sleep 5", "sleep 60", "sleep 1", "sleep 0.5", "sleep {small}"),
    "date": ("date +%s", "date -u +%Y-%m-%dT%H:%M:%SZ", "date +%F"),
    "misc": ("uname -r", "hostname -f", "id -u", "df -P /", "ls -la /var/lib/{app}", "sed -n 1p /etc/os-release",
             "awk '{{print $1}}' /proc/loadavg", "tail -n 200 /var/log/syslog", "wc -l", "ss -tlnp",
             "find /tmp -maxdepth 1 -type f -mtime +{small} -delete", "logger -t {app} health check ok",
             "systemctl is-active --quiet nginx", "kill -0 {pid}", "mkdir -p /var/tmp/{app}-{hex}",
             "ip -o -4 addr show"),
}


def _coreutil(name: str) -> CmdGen:
    commands = COREUTILS[name]

    def gen(rng: Rng, host: Host) -> str:
        return pick(rng, commands).format(pid=rng.getrandbits(20), app=pick(rng, APPS), small=1 + rng.getrandbits(3),
                                          hex=hexs(rng, 6))

    return gen


def _shell_c(rng: Rng, host: Host) -> str:
    return pick(rng, (
        "/bin/sh -c /usr/lib/update-notifier/update-motd-updates-available 2>/dev/null",
        f"/bin/sh -c run-parts --report /etc/cron.{pick(rng, ('hourly', 'daily'))}",
        f"bash -c 'for f in /var/log/{pick(rng, APPS)}/*.log; do gzip -9 \"$f\"; done'",
        f"/bin/bash /opt/{pick(rng, APPS)}/bin/healthcheck.sh --timeout {rng.getrandbits(5)}",
        "/bin/sh -c command -v debian-sa1 > /dev/null && debian-sa1 1 1",
        f"sh -c curl -fsS -m 10 --retry 5 -o /dev/null https://hc-ping.com/{guid(rng)}",
        f"bash -lc 'cd {host.home}/src/{word(rng)} && make test'", "-bash", "bash", "-zsh",
    ))


def _python(rng: Rng, host: Host) -> str:
    return pick(rng, (
        "/usr/bin/python3 /usr/bin/networkd-dispatcher --run-startup-triggers",
        f"/usr/bin/python3 -m pip install --user -r requirements{pick(rng, ('', '-dev', '-test'))}.txt",
        f"python3 /opt/{pick(rng, APPS)}/manage.py "
        f"{pick(rng, ('migrate', 'runserver 0.0.0.0:8000', 'collectstatic --noinput'))}",
        "/usr/bin/python3 /usr/share/unattended-upgrades/unattended-upgrade-shutdown --wait-for-signal",
        f"/usr/local/bin/python3.11 -m celery -A {pick(rng, APPS)} worker --loglevel=INFO "
        f"--concurrency={1 + rng.getrandbits(4)}",
        f"/opt/conda/bin/python -m ipykernel_launcher -f "
        f"{host.home}/.local/share/jupyter/runtime/kernel-{guid(rng)}.json",
    ))


def _node(rng: Rng, host: Host) -> str:
    return pick(rng, (
        f"/usr/bin/node {host.home}/.vscode-server/bin/{hexs(rng, 40)}/out/server-main.js --host=127.0.0.1 --port=0 "
        f"--connection-token={b64(rng, 24)} --use-host-proxy --without-browser-env-var --disable-websocket-compression "
        "--accept-server-license-terms --telemetry-level=off",
        f"node /opt/{pick(rng, APPS)}/dist/server.js",
        "/usr/bin/node /usr/lib/node_modules/npm/bin/npm-cli.js ci --no-audit",
    ))


def _mdworker(rng: Rng, host: Host) -> str:
    return ("/System/Library/Frameworks/CoreServices.framework/Frameworks/Metadata.framework/Versions/A/Support/"
            "mdworker_shared -s mdworker -c MDSImporterWorker -m com.apple.mdworker.shared")


def _mac_chrome(rng: Rng, host: Host) -> str:
    version = f"12{rng.getrandbits(3)}.0.6{rng.getrandbits(9)}.{rng.getrandbits(7)}"
    return (f"/Applications/Google Chrome.app/Contents/Frameworks/Google Chrome Framework.framework/Versions/{version}/"
            "Helpers/Google Chrome Helper (Renderer).app/Contents/MacOS/Google Chrome Helper (Renderer) "
            "--type=renderer --lang=en-US --num-raster-threads=4 --enable-zero-copy "
            "--enable-gpu-memory-buffer-compositor-resources "
            f"--enable-main-frame-before-activation --renderer-client-id={rng.getrandbits(9)} "
            f"--time-ticks-at-unix-epoch=-{rng.getrandbits(50)} --launch-time-ticks={rng.getrandbits(40)} "
            f"--shared-files --field-trial-handle={rng.getrandbits(12)},i,{rng.getrandbits(60)},{rng.getrandbits(60)},"
            "262144 --variations-seed-version=20240618-180141.543000 --seatbelt-client=70")


XPC_SERVICES = ("mdworker.shared", "quicklook.ThumbnailsAgent", "tccd", "trustd", "nsurlsessiond",
                "cfprefsd.xpc.agent", "bird", "WebKit.WebContent")


def _xpc(rng: Rng, host: Host) -> str:
    return f"xpcproxy com.apple.{pick(rng, XPC_SERVICES)}.{hexs(rng, 8).upper()}"


BTH = '"C:\\Windows\\system32\\backgroundTaskHost.exe"'
GIT_EXE = '"C:\\Program Files\\Git\\cmd\\git.exe"'
EXCEL = '"C:\\Program Files\\Microsoft Office\\Root\\Office16\\EXCEL.EXE"'

PROCS: dict[str, tuple[Proc, ...]] = {
    "Win": (
        Proc("\\Device\\HarddiskVolume3\\Windows\\System32\\svchost.exe", _svchost, ("services.exe",), 14, "system"),
        Proc("\\Device\\HarddiskVolume3\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
             _chromium("C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe"), ("chrome.exe",), 12,
             fresh=True),
        Proc("\\Device\\HarddiskVolume3\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe",
             _chromium("C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe"), ("msedge.exe",), 7,
             fresh=True),
        Proc("\\Device\\HarddiskVolume3\\Windows\\System32\\conhost.exe", _conhost, ("cmd.exe", "powershell.exe",
                                                                                   "svchost.exe"), 7, "any"),
        Proc("\\Device\\HarddiskVolume3\\Windows\\System32\\cmd.exe", _cmd, ("explorer.exe", "Code.exe", "node.exe",
                                                                            "svchost.exe", "msiexec.exe"), 5, "any"),
        Proc("\\Device\\HarddiskVolume3\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", _powershell,
             ("explorer.exe", "svchost.exe", "CcmExec.exe", "IntuneManagementExtension.exe", "cmd.exe"), 4, "any",
             fresh=True),
        Proc("\\Device\\HarddiskVolume3\\Windows\\System32\\dllhost.exe", _dllhost, ("svchost.exe",), 3, "any",
             fresh=True),
        Proc("\\Device\\HarddiskVolume3\\Windows\\System32\\SearchProtocolHost.exe", _search_protocol,
             ("SearchIndexer.exe",), 3, "system"),
        Proc("\\Device\\HarddiskVolume3\\Windows\\System32\\RuntimeBroker.exe",
             _simple("C:\\Windows\\System32\\RuntimeBroker.exe -Embedding"), ("svchost.exe",), 3),
        Proc("\\Device\\HarddiskVolume3\\Windows\\System32\\backgroundTaskHost.exe",
             _simple(BTH + " -ServerName:BackgroundTaskHost.WebAccountProvider",
                     BTH + " -ServerName:App.AppXmtcan0h2tfbfy7k9kn8hbxb6dmzz1zh0.mca"),
             ("svchost.exe",), 2),
        Proc("\\Device\\HarddiskVolume3\\Windows\\System32\\wbem\\WmiPrvSE.exe",
             _simple("C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding",
                     "C:\\Windows\\system32\\wbem\\wmiprvse.exe -Embedding"), ("svchost.exe",), 2, "service"),
        Proc("\\Device\\HarddiskVolume3\\Windows\\System32\\taskhostw.exe",
             _simple("taskhostw.exe {{222A245B-E637-4AE9-A93F-A59CA119A75E}}",
                     "taskhostw.exe -RegisterDevice -ProtectionStateChanged -FreeNetworkOnly",
                     "taskhostw.exe Install $(Arg0)"), ("svchost.exe",), 2),
        Proc("\\Device\\HarddiskVolume3\\Users\\Public\\Teams\\Teams.exe", _teams, ("Teams.exe",), 2, fresh=True),
        Proc("\\Device\\HarddiskVolume3\\Program Files\\Microsoft VS Code\\Code.exe", _code, ("Code.exe",
                                                                                            "explorer.exe"), 1.5),
        Proc("\\Device\\HarddiskVolume3\\Program Files\\Git\\cmd\\git.exe",
             _simple("git.exe fetch --prune --quiet origin", GIT_EXE + " status -z -uall",
                     "git.exe log --oneline -n 50 --format=%H%x00%s", "git.exe rev-parse --show-toplevel",
                     GIT_EXE + " -c core.quotepath=false for-each-ref --format=%(refname)"),
             ("Code.exe", "cmd.exe", "explorer.exe"), 2),
        Proc("\\Device\\HarddiskVolume3\\Windows\\System32\\msiexec.exe",
             _simple("C:\\Windows\\system32\\msiexec.exe /V", "C:\\Windows\\System32\\MsiExec.exe -Embedding {hex}"
                     "A1B2C3D4 E Global\\MSI0000"), ("services.exe", "msiexec.exe"), 1, "system"),
        Proc("\\Device\\HarddiskVolume3\\Windows\\System32\\rundll32.exe",
             _simple("C:\\Windows\\system32\\rundll32.exe C:\\Windows\\system32\\PcaSvc.dll,PcaPatchSdbTask",
                     "\"C:\\Windows\\system32\\rundll32.exe\" shell32.dll,SHCreateLocalServerRunDll {guid} -Embedding",
                     "rundll32.exe C:\\Windows\\System32\\shell32.dll,Control_RunDLL \"{home}\\Downloads\\{w}.cpl\""),
             ("svchost.exe", "explorer.exe"), 1),
        Proc("\\Device\\HarddiskVolume3\\Program Files\\Microsoft Office\\root\\Office16\\EXCEL.EXE",
             _simple(EXCEL + ' "{home}\\Documents\\{w}_{word}.xlsx"', EXCEL + " /dde"),
             ("explorer.exe", "OUTLOOK.EXE"), 1),
    ),
    "Lin": (
        Proc("/usr/bin/bash", _shell_c, ("sshd", "cron", "bash", "systemd", "tmux: server"), 10, "any"),
        Proc("/usr/bin/dash", _shell_c, ("cron", "systemd", "run-parts"), 5, "root"),
        Proc("/usr/bin/ps", _coreutil("ps"), ("bash", "sh", "node_exporter"), 6, "any"),
        Proc("/usr/bin/cat", _coreutil("cat"), ("bash", "sh", "python3"), 6, "any"),
        Proc("/usr/bin/grep", _coreutil("grep"), ("bash", "sh"), 5, "any"),
        Proc("/usr/bin/sleep", _coreutil("sleep"), ("bash", "sh", "runc"), 4, "any"),
        Proc("/usr/bin/date", _coreutil("date"), ("bash", "sh", "cron"), 3, "any"),
        Proc("/usr/sbin/runc", _runc, ("containerd-shim-runc-v2", "containerd"), 6, "root", fresh=True),
        Proc("/usr/bin/containerd-shim-runc-v2", _shim, ("containerd",), 1, "root", fresh=True),
        Proc("/usr/bin/python3.11", _python, ("bash", "systemd", "sh", "supervisord"), 3, "any"),
        Proc("/usr/lib/jvm/java-17-openjdk-amd64/bin/java", _java, ("systemd", "bash"), 1, "service", fresh=True),
        Proc("/usr/bin/node", _node, ("bash", "sh", "systemd"), 1.5, "any", fresh=True),
        Proc("/usr/sbin/sshd", _simple("sshd: {user} [priv]", "/usr/sbin/sshd -D -R", "sshd: root@notty"),
             ("sshd", "systemd"), 2, "root"),
        Proc("/usr/bin/apt-get",
             _simple("apt-get update -qq", "/usr/bin/apt-get -qq -y install --no-install-recommends curl",
                     "apt-get -o APT::Update::Post-Invoke-Success:: check"), ("bash", "sh"), 1, "root"),
        Proc("/usr/bin/curl", _simple("curl -fsSL https://{word}.example.com/api/v1/health",
                                      "curl -s -o /dev/null -w %{{http_code}} http://127.0.0.1:{n}/ready",
                                      "/usr/bin/curl --silent --max-time 5 http://169.254.169.254/latest/meta-data/"
                                      "instance-id"), ("bash", "sh", "python3"), 2, "any"),
        Proc("/usr/bin/git", _simple("/usr/bin/git fetch --prune origin", "git rev-parse HEAD",
                                     "git clone --depth 1 https://gitlab.example.com/{word}/{w}.git",
                                     "git -c protocol.version=2 fetch --no-tags --prune --progress --depth=50 origin "
                                     "+refs/heads/main:refs/remotes/origin/main"),
             ("bash", "gitlab-runner"), 1.5, "any"),
        Proc("", _coreutil("misc"), ("bash", "sh", "node_exporter", "cron"), 5, "any"),
        Proc("/usr/lib/systemd/systemd-journald", _simple("/lib/systemd/systemd-journald"), ("systemd",), 0.3, "root"),
        Proc("/usr/sbin/cron", _simple("/usr/sbin/CRON -f", "/usr/sbin/cron -f -P"), ("cron",), 2, "root"),
        Proc("/usr/bin/dockerd", _simple("/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock"),
             ("systemd",), 0.05, "root"),
    ),
    "Mac": (
        Proc("/System/Library/Frameworks/CoreServices.framework/Frameworks/Metadata.framework/Versions/A/Support/"
             "mdworker_shared", _mdworker, ("launchd",), 12, "any"),
        Proc("/Applications/Google Chrome.app/Contents/Frameworks/Google Chrome Framework.framework/Helpers/"
             "Google Chrome Helper (Renderer).app/Contents/MacOS/Google Chrome Helper (Renderer)", _mac_chrome,
             ("Google Chrome",), 10, fresh=True),
        Proc("/usr/libexec/xpcproxy", _xpc, ("launchd",), 8, "any", fresh=True),
        Proc("/bin/zsh", _simple("/bin/zsh -il", "-zsh", "/bin/zsh -c source {home}/.zshrc && env"),
             ("Terminal", "iTerm2", "login", "Code Helper"), 4),
        Proc("/bin/ps", _simple("/bin/ps -ax -o pid,ppid,command", "ps -p {n} -o comm="), ("zsh", "Code Helper"), 3),
        Proc("/usr/sbin/sysctl", _simple("/usr/sbin/sysctl -n hw.ncpu", "sysctl -n machdep.cpu.brand_string"),
             ("zsh", "Slack Helper"), 2),
        Proc("/usr/bin/git", _simple("/usr/bin/git status --porcelain=v2", "git fetch origin",
                                     "/Library/Developer/CommandLineTools/usr/bin/git rev-parse --git-dir"),
             ("zsh", "Code Helper"), 3),
        Proc("/opt/homebrew/bin/brew", _simple("/opt/homebrew/bin/brew update --auto-update",
                                              "/bin/bash /opt/homebrew/Library/Homebrew/brew.sh upgrade"),
             ("zsh",), 0.5),
    ),
}


def _hashes(rng: Rng) -> str:
    return (f'"SHA256HashData": "{hexs(rng, 64)}", "SHA1HashData": "0000000000000000000000000000000000000000", '
            f'"MD5HashData": "{hexs(rng, 32)}", ')


def _proc_fragment(image: str, cmd: str, parent: str, hashes: str, platform: str) -> tuple[str, str, str]:
    """The process's JSON members, pre-encoded: (ImageFileName, CommandLine, the rest)."""
    rest = f'"ParentBaseFileName": {enc(parent)}, {hashes}'
    if platform == "Win":
        rest += '"ImageSubsystem": "2", "IntegrityLevel": "8192", "TokenType": "1", '
    return f'"ImageFileName": {enc(image)}, ', f'"CommandLine": {enc(cmd)}, ', rest


# ---------------------------------------------------------------------------------------------- container activity

DOCKER_PATHS = (("/usr/bin/docker", 70), ("/usr/local/bin/docker", 12), ("/snap/docker/2915/bin/docker", 3),
                ("/usr/bin/DOCKER", 0.3), ("/tmp/.x/docker", 0.2))
MAC_DOCKER = ("/Applications/Docker.app/Contents/Resources/bin/docker", "/opt/homebrew/bin/docker",
              "/usr/local/bin/docker")
TOOL_PATHS: dict[str, tuple[str, ...]] = {
    "kubectl": ("/usr/local/bin/kubectl", "/usr/bin/kubectl", "/snap/kubectl/3149/kubectl", "/usr/local/bin/kubectl"),
    "crictl": ("/usr/local/bin/crictl", "/usr/bin/crictl"),
    "ctr": ("/usr/bin/ctr", "/usr/local/bin/ctr"),
    "podman": ("/usr/bin/podman",),
    "nerdctl": ("/usr/local/bin/nerdctl",),
}
TOOLS = (("docker", 46), ("kubectl", 30), ("crictl", 7), ("ctr", 5), ("podman", 7), ("nerdctl", 5))
SCENARIOS = (("read", 50), ("routine", 30), ("exec", 9), ("privileged", 4), ("mount", 2.5), ("secrets", 2),
             ("escape", 1), ("chain", 0.6), ("near", 3))


def _container_cmd(rng: Rng, tool: str, scenario: str) -> str:
    img = pick(rng, IMAGES)
    ns = pick(rng, NAMESPACES)
    name = f"{pick(rng, APPS)}-{rng.getrandbits(8)}"
    cid = hexs(rng, 12)
    run = {"docker": "docker run", "podman": "podman run", "nerdctl": "nerdctl run", "ctr": "ctr run",
           "crictl": "crictl runp", "kubectl": "kubectl run"}[tool]
    if scenario == "read":
        return pick(rng, {
            "docker": ("docker ps -a", "docker ps --format '{{.Names}}\\t{{.Status}}'", "docker images",
                       f"docker logs -f --tail {pick(rng, ('50', '100', '500'))} {name}", f"docker inspect {name}",
                       "docker version --format '{{.Server.Version}}'", "docker info --format '{{json .}}'",
                       "docker stats --no-stream", "docker compose ps", "docker network ls", "docker system df",
                       f"docker image prune -f --filter until={1 + rng.getrandbits(7)}h", f"docker stop {name}",
                       f"docker rm -f {name}", f"docker tag {img} registry.internal.example.com/{img}",
                       f"docker push registry.internal.example.com/{img}", "docker login -u ci --password-stdin"),
            "kubectl": (f"kubectl get pods -n {ns} -o wide", f"kubectl describe pod {pod(rng)} -n {ns}",
                        f"kubectl logs {pod(rng)} -n {ns} --since=1h", f"kubectl config use-context {word(rng)}",
                        f"kubectl rollout status deployment/{pick(rng, APPS)} -n {ns} --timeout=300s",
                        "kubectl top nodes", "kubectl get nodes -o json",
                        f"kubectl get events -n {ns} --sort-by=.lastTimestamp",
                        f"kubectl get secret {pick(rng, APPS)}-tls -n {ns} -o jsonpath='{{.data.tls\\.crt}}'",
                        f"kubectl -n {ns} get secrets", f"kubectl auth can-i --list -n {ns}",
                        f"kubectl get deploy,sts,ds -n {ns}", "kubectl version --client -o json",
                        f"kubectl delete pod {pod(rng)} -n {ns} --grace-period=30"),
            "crictl": ("crictl ps -a", "crictl pods", "crictl images", f"crictl logs --tail 100 {cid}",
                       f"crictl inspect {cid}", "crictl stats", "crictl info"),
            "ctr": ("ctr -n k8s.io images ls", "ctr -n k8s.io containers list", "ctr version",
                    f"ctr -n k8s.io images pull docker.io/library/{img}", "ctr -n k8s.io tasks ls"),
            "podman": ("podman ps -a", "podman images", f"podman logs {name}", f"podman run --rm {img} true",
                       f"podman pull {img}", f"podman exec -it {name} sh", "podman system prune -f"),
            "nerdctl": ("nerdctl ps -a", "nerdctl images", f"nerdctl logs {name}", "nerdctl compose up -d",
                        f"nerdctl run -d --name {name} {img}"),
        }[tool])
    if scenario == "routine":
        return pick(rng, {
            "docker": (f"docker run --rm {img} {pick(rng, ('whoami', 'true', 'env', 'cat /etc/os-release'))}",
                       f"docker run -d --name {name} -p {8000 + rng.getrandbits(10)}:80 --restart unless-stopped {img}",
                       f"docker pull {img}", f"docker build -t {name}:{hexs(rng, 7)} -f Dockerfile .",
                       f"docker build --pull --no-cache -t registry.internal.example.com/{pick(rng, APPS)}:"
                       f"{rng.getrandbits(9)} .",
                       f"docker cp {name}:/var/log/app.log ./app-{cid}.log",
                       f"docker run --rm -e CI=true -v {pick(rng, ('/builds', '/home/runner/work'))}/{word(rng)}:/src "
                       f"-w /src {img} make test",
                       f"docker run --rm -v /var/run/docker.sock:/var/run/docker.sock:ro {img} docker ps"),
            "kubectl": (f"kubectl apply -f {pick(rng, APPS)}-deployment.yaml -n {ns}",
                        f"kubectl apply -k overlays/{ns}", f"kubectl create namespace {word(rng)}",
                        f"kubectl create job {name}-manual --from=cronjob/{name} -n {ns}",
                        f"kubectl create secret generic {pick(rng, APPS)}-env --from-env-file=.env -n {ns}",
                        f"kubectl run tmp-{hexs(rng, 5)} --image=busybox --restart=Never --rm -it -- sh",
                        f"kubectl port-forward svc/{pick(rng, APPS)} -n {ns} {8000 + rng.getrandbits(10)}:80",
                        "kubectl proxy --port=8001"),
            "crictl": (f"crictl exec {cid} cat /etc/resolv.conf", f"crictl pull {img}", f"crictl stop {cid}"),
            "ctr": (f"ctr run --rm docker.io/library/{img} t{rng.getrandbits(12)} {pick(rng, ('sh', 'true', 'id'))}",
                    f"ctr -n k8s.io run --rm docker.io/library/{img} dbg{rng.getrandbits(8)} sh"),
            "podman": (f"podman run -d --name {name} -p 8080:80 {img}", f"podman build -t {name} .",
                       f"podman run --rm -v ./data:/data:Z {img} ls /data"),
            "nerdctl": (f"nerdctl run --rm {img} id", f"nerdctl build -t {name} .", f"nerdctl pull {img}"),
        }[tool])
    if scenario == "exec":
        inner = pick(rng, ("sh", "bash", "/bin/sh -c 'env | sort'", "cat /etc/passwd", "ps aux", "id"))
        return pick(rng, {
            "docker": (f"docker exec -it {name} {inner}", f"docker exec -u 0 {name} {inner}"),
            "kubectl": (f"kubectl exec -it {pod(rng)} -n {ns} -- {inner}",
                        f"kubectl exec {pod(rng)} -c app -- {inner}"),
            "crictl": (f"crictl exec -it {cid} {inner}",),
            "ctr": (f"ctr -n k8s.io task exec --exec-id dbg{rng.getrandbits(8)} {cid} {inner}",),
            "podman": (f"podman exec -it {name} {inner}",),
            "nerdctl": (f"nerdctl exec -it {name} {inner}",),
        }[tool])
    if scenario == "privileged":
        flags = [pick(rng, ("--privileged", "--privileged", "--cap-add=SYS_ADMIN", "--net=host", "--pid=host",
                            "--cap-add=sys_admin", "--network=host", "--cap-add SYS_ADMIN", "--ipc=host"))
                 for _ in range(1 + rng.getrandbits(1))]
        if tool == "kubectl":
            return (f"kubectl run dbg-{hexs(rng, 5)} --rm -it --image={img} --overrides="
                    '{"spec":{"hostPID":true,"containers":[{"name":"x","securityContext":{"privileged":true}}]}}'
                    f" -- sh{' ' + flags[0] if rng.random() < 0.3 else ''}")
        return f"{run} --rm {' '.join(flags)} {img} {pick(rng, ('sh', 'bash', 'id', 'true'))}"
    if scenario == "mount":
        mount = pick(rng, ("-v /:/host", "-v /etc:/host-etc", "-v /var/run/docker.sock:/var/run/docker.sock",
                           "-v /:/host:ro", "-v /etc:/etc:ro", "--volume /:/host", "-V /:/host", "-v /:/mnt",
                           "--mount type=bind,src=/,dst=/host"))
        if tool in ("kubectl", "crictl"):
            return (f"kubectl run mnt-{hexs(rng, 5)} --image={img} "
                    """--overrides='{"spec":{"volumes":[{"hostPath":{"path":"/"}}]}}'""")
        return f"{run} --rm -it {mount} {img} {pick(rng, ('sh', 'ls /host', 'cat /host/etc/shadow'))}"
    if scenario == "secrets":
        return pick(rng, (f"kubectl get secrets -n {ns} -o yaml", "kubectl get secrets -A -o json",
                          f"kubectl get configmaps -n {ns}", "kubectl get secrets --all-namespaces",
                          f"kubectl get configmaps {pick(rng, APPS)}-config -o yaml -n {ns}"))
    if scenario == "escape":
        return pick(rng, (f"{run} --rm -it --pid=host {img} nsenter -t 1 -m -u -n -i sh",
                          f"kubectl exec -it {pod(rng)} -n {ns} -- chroot /host bash",
                          f"docker run --rm -v /:/host {img} chroot /host sh",
                          f"docker exec {name} nsenter --mount=/proc/1/ns/mnt -- id"))
    if scenario == "chain":
        return pick(rng, (
            f"docker run --privileged --pid=host -v /:/host --rm {img} "
            "sh -c \"chroot /host sh -c 'kubectl get secrets -A'\"",
            f"docker run --privileged -v /var/run/docker.sock:/var/run/docker.sock {img} "
            f"sh -c \"docker exec -it {name} nsenter -t 1 -m sh\"",
            f"kubectl exec -it {pod(rng)} -n kube-system -- nsenter -t 1 -m -u -i -n sh -c 'kubectl get secrets -A'",
            f"docker run -d --privileged --net=host -v /etc:/host-etc {img} chroot /host-etc",
        ))
    raise AssertionError(scenario)


def container_event(rng: Rng, host: Host) -> tuple[str, str, str]:
    """(ImageFileName, CommandLine, ParentBaseFileName) of one container-tool process."""
    parent = pick(rng, ("bash", "bash", "bash", "zsh", "sudo", "sh", "gitlab-runner", "python3", "java", "make"))
    scenario = SCENARIOS[SCENARIO_TABLE[int(rng.random() * len(SCENARIO_TABLE))]][0]
    if scenario == "near":
        return pick_near(rng, host, parent)
    if host.platform == "Win":
        exe = "C:\\Program Files\\Docker\\Docker\\resources\\bin\\docker.exe"
        cmd = _container_cmd(rng, "docker", "routine" if scenario == "read" else scenario)
        if not cmd.startswith("docker "):
            cmd = _container_cmd(rng, "docker", "routine")
        return ("\\Device\\HarddiskVolume3\\Program Files\\Docker\\Docker\\resources\\bin\\docker.exe",
                f'"{exe}"{cmd[len("docker"):]}', pick(rng, ("powershell.exe", "cmd.exe", "Code.exe")))
    tool = TOOLS[TOOL_TABLE[int(rng.random() * len(TOOL_TABLE))]][0]
    if scenario == "secrets":
        tool = "kubectl"
    elif tool == "crictl" and scenario in ("privileged", "mount", "escape", "chain"):
        tool = "docker"
    cmd = _container_cmd(rng, tool, scenario)
    tool = cmd.split(" ", 1)[0]
    if host.platform == "Mac":
        image = pick(rng, MAC_DOCKER) if tool == "docker" else f"/opt/homebrew/bin/{tool}"
    elif tool == "docker":
        image = DOCKER_PATHS[DOCKER_TABLE[int(rng.random() * len(DOCKER_TABLE))]][0]
        if image.endswith("DOCKER"):
            cmd = cmd.upper()
    else:
        image = pick(rng, TOOL_PATHS[tool])
    if host.role == "k8s-worker" and rng.random() < 0.3:
        parent = pick(rng, ("containerd-shim", "kubelet", "bash"))
    return image, cmd, parent


def pick_near(rng: Rng, host: Host, parent: str) -> tuple[str, str, str]:
    img = pick(rng, IMAGES)
    return pick(rng, (
        ("/usr/local/bin/docker-compose", f"docker-compose run --rm --privileged {pick(rng, APPS)}", parent),
        ("/usr/bin/containerd-ctr", f"containerd-ctr run --rm --privileged docker.io/library/{img} x", parent),
        ("/usr/bin/oc", f"kubectl get secrets -n openshift-{pick(rng, ('config', 'monitoring'))}", parent),
        ("/usr/local/bin/k3d", f"k3d cluster create {word(rng)} --agents {1 + rng.getrandbits(2)}", parent),
        ("/usr/bin/bash", f"/bin/bash -c docker run --privileged -v /:/host {img} chroot /host sh", "gitlab-runner"),
        ("/usr/bin/curl", "curl -s --unix-socket /var/run/docker.sock -X POST -H \"Content-Type: application/json\" "
                          f"-d '{{\"Image\":\"{img}\",\"HostConfig\":{{\"Privileged\":true}}}}' http://localhost/containers/create",
         parent),
        ("/usr/bin/python3.11", "python3 -c import os; os.system('kubectl get secrets -A')", "jupyter-lab"),
        ("/usr/bin/nsenter", "nsenter --mount=/proc/1/ns/mnt -- /bin/bash", parent),
        ("/usr/local/bin/kind", f"kind create cluster --name {word(rng)} --image kindest/node:v1.29.2", parent),
        ("/usr/local/bin/minikube", "minikube start --driver=docker --cpus=4 --memory=8g", parent),
    ))


TOOL_TABLE = weighted_table([w for _, w in TOOLS])
SCENARIO_TABLE = weighted_table([w for _, w in SCENARIOS])
DOCKER_TABLE = weighted_table([w for _, w in DOCKER_PATHS], 10_000)


# ---------------------------------------------------------------------------------------------- other events


def _dns(rng: Rng) -> str:
    domain = pick(rng, ("www.google.com", "login.microsoftonline.com", "outlook.office365.com", "github.com",
                        "registry-1.docker.io", "auth.docker.io", "production.cloudflare.docker.com",
                        "api.segment.io", "update.googleapis.com", f"{word(rng)}.s3.amazonaws.com",
                        "ocsp.digicert.com", "ts.falcon.crowdstrike.com", f"{word(rng)}.internal.example.com",
                        "kubernetes.default.svc.cluster.local", "time.windows.com", "ctldl.windowsupdate.com"))
    return (f'"ContextProcessId": "{rng.getrandbits(45)}", "ContextThreadId": "{rng.getrandbits(40)}", '
            f'"ContextTimeStamp": "{{ts_s}}", "DomainName": "{domain}", '
            f'"RequestType": "{pick(rng, ("1", "1", "28", "5"))}", "DualRequest": "0", '
            '"EffectiveTransmissionClass": "2"')


def _net(rng: Rng) -> str:
    return (f'"ContextProcessId": "{rng.getrandbits(45)}", "ContextTimeStamp": "{{ts_s}}", '
            f'"LocalAddressIP4": "10.{rng.getrandbits(8)}.{rng.getrandbits(8)}.{rng.getrandbits(8)}", '
            f'"LocalPort": "{32768 + rng.getrandbits(15)}", '
            f'"RemoteAddressIP4": "{rng.getrandbits(8)}.{rng.getrandbits(8)}.{rng.getrandbits(8)}.'
            f'{rng.getrandbits(8)}", '
            f'"RemotePort": "{pick(rng, ("443", "443", "80", "53", "22", "8443"))}", '
            f'"Protocol": "6", "ConnectionDirection": "{pick(rng, ("0", "0", "1"))}", "ConnectionFlags": "0", '
            f'"InContext": "0", "Icmp": "0"')


def _end(rng: Rng) -> str:
    return (f'"TargetProcessId": "{rng.getrandbits(45)}", "RawProcessId": "{rng.getrandbits(18)}", '
            f'"ProcessEndTime": "{{ts_s}}", "CycleTime": "{rng.getrandbits(34)}", '
            '"GrandParentBaseFileName": "services.exe"')


def _logon(rng: Rng) -> str:
    return (f'"LogonType": "{pick(rng, ("2", "3", "10", "11"))}", "LogonDomain": "CORP", "UserLogonFlags": "0", '
            f'"AuthenticationPackage": "{pick(rng, ("Negotiate", "Kerberos", "NTLM"))}", "LogonTime": "{{ts_s}}", '
            f'"RemoteAddressIP4": "10.{rng.getrandbits(8)}.{rng.getrandbits(8)}.{rng.getrandbits(8)}"')


OTHERS: tuple[tuple[str, Callable[[Rng], str], float], ...] = (
    ("DnsRequest", _dns, 5.5), ("NetworkConnectIP4", _net, 4.5), ("EndOfProcess", _end, 2.0),
    ("UserLogon", _logon, 0.5))
OTHER_SHARE = 0.125
SYNTHETIC_SHARE = 0.015


# ---------------------------------------------------------------------------------------------- corpus


VERSIONS = {"Win": "WinV2", "Lin": "LinV5", "Mac": "MacV5"}


class Corpus:
    """All the pools, built once from the seed; :meth:`lines` then writes events cheaply."""

    def __init__(self, events: int, seed: int) -> None:
        self.rng = rng = random.Random(seed)
        self.hosts = make_fleet(rng, max(300, min(6000, events // 200)))
        activity = [0.2 + rng.paretovariate(1.5) for _ in self.hosts]  # a few busy servers, many quiet desktops
        self.host_table = weighted_table(activity, 1 << 16)
        self.container_hosts = [h for h in self.hosts if h.role in ("k8s-worker", "k8s-ctl", "build", "dev")]
        self.container_table = weighted_table(
            [{"k8s-worker": 4.0, "k8s-ctl": 6.0, "build": 5.0}.get(h.role, 1.0 if h.platform != "Win" else 0.2)
             for h in self.container_hosts], 1 << 14)
        self.proc_tables = {p: weighted_table([proc.weight for proc in procs]) for p, procs in PROCS.items()}
        # per (platform, process): variants of (command line, parent, hashes), pre-encoded
        self.pools: dict[tuple[str, int], list[tuple[str, str, str, str]]] = {}
        self.hashes: dict[tuple[str, int], list[str]] = {}
        for platform, procs in PROCS.items():
            local = [h for h in self.hosts if h.platform == platform] or [_host(rng, platform, "desktop", 0, ["0"])]
            for index, proc in enumerate(procs):
                hashes = [_hashes(rng) for _ in range(1 + rng.getrandbits(2))]
                self.hashes[(platform, index)] = hashes
                variants = []
                for _ in range(0 if proc.fresh else 128 + int(proc.weight * 64)):
                    host = local[int(rng.random() * len(local))]
                    variants.append((*self._fragment(proc, host, hashes), proc.who))
                self.pools[(platform, index)] = variants
        self.container_hashes = {tool: _hashes(rng) for tool, _ in TOOLS}
        self.other_table = weighted_table([w for _, _, w in OTHERS])
        self.other_pools = [[gen(rng) for _ in range(512)] for _, gen, _ in OTHERS]
        self.clock = 1_718_000_000_000 + rng.getrandbits(34)  # mid-2024 plus up to ~200 days

    def _fragment(self, proc: Proc, host: Host, hashes: list[str]) -> tuple[str, str, str]:
        cmd = proc.cmd(self.rng, host)
        image = proc.image or "/usr/bin/" + cmd.split(" ", 1)[0]
        return _proc_fragment(image, cmd, pick(self.rng, proc.parents), pick(self.rng, hashes), host.platform)

    def _user(self, host: Host, who: str) -> User:
        rng = self.rng
        if who == "person" or (who == "any" and rng.random() < 0.6):
            return host.primary
        if who == "root":
            return host.users[0] if host.platform == "Lin" else host.users[1]
        if who == "service":
            return host.users[2]
        if who == "system":
            return host.users[1 + int(rng.random() * 3)] if host.platform == "Win" else host.users[0]
        return host.users[int(rng.random() * len(host.users))]

    def _head(self, simple_name: str, platform: str, ts: int) -> str:
        rng = self.rng
        roll = rng.random()
        version = VERSIONS[platform]
        if roll < 0.5:  # a LogScale export
            return (f'{{"@timestamp": {ts}, "#event_simpleName": "{simple_name}", "#repo": "base_sensor", '
                    f'"#type": "falcon-raw-data", "timestamp": "{ts}", "name": "{simple_name}{version}", ')
        if roll > 0.98:  # LogScale, with the raw field kept beside the tag
            return (f'{{"@timestamp": {ts}, "#event_simpleName": "{simple_name}", "#repo": "base_sensor", '
                    f'"event_simpleName": "{simple_name}", "timestamp": "{ts}", ')
        return (f'{{"event_simpleName": "{simple_name}", "name": "{simple_name}{version}", "id": "{guid(rng)}", '
                f'"timestamp": "{ts}", ')

    def _tail(self, ts: int) -> str:
        rng = self.rng
        bits = rng.getrandbits
        start = ts - bits(7)
        return (f'"RawProcessId": "{bits(17) + 300}", "ParentProcessId": "{bits(45)}", '
                f'"TargetProcessId": "{bits(45)}", "SourceProcessId": "{bits(45)}", "SourceThreadId": "{bits(44)}", '
                f'"ProcessStartTime": "{start // 1000}.{start % 1000:03d}", "ProcessCreateFlags": "{bits(20)}", '
                f'"ProcessParameterFlags": "{bits(14)}", "SessionId": "{bits(2)}", "Tags": "25, 12094627905582, '
                f'{bits(44)}", "TreeId": "{bits(40)}"}}')

    def line(self) -> str:
        rng = self.rng
        rnd = rng.random
        self.clock += 1 + int(rnd() * 170)
        ts = self.clock
        roll = rnd()
        if roll < CONTAINER_SHARE:
            host = self.container_hosts[self.container_table[int(rnd() * len(self.container_table))]]
            image, cmd, parent = container_event(rng, host)
            tool = image.rsplit("/", 1)[-1]
            hashes = self.container_hashes.get(tool) or _hashes(rng)
            image_part, cmd_part, rest = _proc_fragment(image, cmd, parent, hashes, host.platform)
            user = self._user(host, pick(rng, ("root", "person", "service", "person")))
            kind = rnd()
            name = ("ProcessRollup2" if kind < 0.97 else "SyntheticProcessRollup2" if kind < 0.99
                    else "processrollup2")
            if 0.96 < kind < 0.97:  # a field the rule tests is missing
                image_part, cmd_part = ("", cmd_part) if kind < 0.965 else (image_part, "")
            return "".join((self._head(name, host.platform, ts), host.fragment, user.fragment, image_part, cmd_part,
                            rest, self._tail(ts)))
        host = self.hosts[self.host_table[int(rnd() * len(self.host_table))]]
        if roll < CONTAINER_SHARE + OTHER_SHARE:
            which = self.other_table[int(rnd() * len(self.other_table))]
            name = OTHERS[which][0]
            bodies = self.other_pools[which]
            body = bodies[int(rnd() * len(bodies))].replace("{ts_s}", f"{ts // 1000}.{ts % 1000:03d}")
            return "".join((self._head(name, host.platform, ts), host.fragment, body, "}"))
        procs = self.proc_tables[host.platform]
        index = procs[int(rnd() * len(procs))]
        pool = self.pools[(host.platform, index)]
        if pool:
            image_part, cmd_part, rest, who = pool[int(rnd() * len(pool))]
        else:
            proc = PROCS[host.platform][index]
            image_part, cmd_part, rest = self._fragment(proc, host, self.hashes[(host.platform, index)])
            who = proc.who
        name = "ProcessRollup2"
        if roll > 1 - SYNTHETIC_SHARE:
            name = "SyntheticProcessRollup2"
        elif roll > 1 - SYNTHETIC_SHARE - 0.0005:  # an event lacking a field the rule tests
            image_part, cmd_part = ("", cmd_part) if rnd() < 0.5 else (image_part, "")
        return "".join((self._head(name, host.platform, ts), host.fragment, self._user(host, who).fragment, image_part,
                        cmd_part, rest, self._tail(ts)))


def write_corpus(path: Path, events: int, seed: int) -> float:
    """Write the corpus; returns the seconds it took."""
    started = time.perf_counter()
    corpus = Corpus(events, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8", newline="\n") as out:
        line = corpus.line
        left = events
        while left:
            n = min(BATCH, left)
            out.write("\n".join([line() for _ in range(n)]))
            out.write("\n")
            left -= n
    partial.replace(path)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="number of events (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (another seed: a held-out corpus)")
    parser.add_argument("--output", type=Path, default=None,
                        help="NDJSON file to write (default bench/data/events-seed{S}-{N}.ndjson)")
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be positive")
    output = args.output or Path(__file__).resolve().parent / "data" / f"events-seed{args.seed}-{args.events}.ndjson"
    seconds = write_corpus(output, args.events, args.seed)
    size = output.stat().st_size
    print(f"wrote {args.events:,} events ({size / 1e6:,.1f} MB, {size / args.events:,.0f} B/event) to {output} "
          f"in {seconds:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
