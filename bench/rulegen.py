"""Deterministic CQL rules for the conversion batch: seed-like scored detections (signals, a score,
a severity ladder, select and sort) and plain filter rules (regexes, globs, in(), not, or,
comparisons) over ProcessRollup2 fields that every target profile maps exactly."""

from __future__ import annotations

import random

TOOLS = ("docker", "kubectl", "crictl", "ctr", "podman", "nerdctl", "helm", "oc", "buildah", "skopeo", "k3s",
         "minikube", "kind", "runc")
SUBCOMMANDS = ("docker exec", "docker run", "docker pull", "docker build", "docker cp", "kubectl exec",
               "kubectl run", "kubectl apply", "kubectl create", "kubectl get secrets", "kubectl get configmaps",
               "kubectl port-forward", "kubectl proxy", "crictl exec", "ctr run", "podman run", "helm install",
               "nerdctl run", "oc rsh", "oc debug node")
SIGNALS = (
    ("PrivilegedContainer", "PrivScore", ("--privileged", "--cap-add=SYS_ADMIN", "--net=host", "--pid=host",
                                          "--ipc=host", "--security-opt seccomp=unconfined")),
    ("HostMount", "MountScore", ("-v /:/host", "-v /etc:/", "-v /var/run/docker.sock", "--mount type=bind,src=/")),
    ("ContainerExec", "ExecScore", ("docker exec", "kubectl exec", "crictl exec", "podman exec", "oc rsh")),
    ("SecretsAccess", "SecretsScore", ("get secrets", "get configmaps", "describe secret", "get sa")),
    ("ContainerEscape", "EscapeScore", ("nsenter", "chroot /host", "unshare -r", "/proc/1/root")),
    ("ImagePull", "PullScore", ("docker pull", "ctr images pull", "crictl pull", "podman pull")),
    ("PortForward", "ForwardScore", ("kubectl port-forward", "kubectl proxy", "socat tcp-listen")),
)
WINDOWS_BINARIES = ("powershell.exe", "pwsh.exe", "cmd.exe", "rundll32.exe", "regsvr32.exe", "mshta.exe",
                    "certutil.exe", "bitsadmin.exe", "wmic.exe", "msbuild.exe", "installutil.exe", "cscript.exe",
                    "wscript.exe", "schtasks.exe", "reg.exe", "net.exe", "nltest.exe", "vssadmin.exe")
PARENTS = ("winword.exe", "excel.exe", "outlook.exe", "explorer.exe", "w3wp.exe", "sqlservr.exe", "services.exe",
           "svchost.exe", "wmiprvse.exe", "java.exe", "bash", "sshd", "python3", "node")
KEYWORDS = ("-enc", "-EncodedCommand", "downloadstring", "invoke-expression", "iex", "bypass", "hidden",
            "frombase64string", "urlcache", "-split", "/transfer", "shadowcopy", "delete", "whoami", "/domain_trusts",
            "comsvcs", "MiniDump", "lsass", "add-mppreference", "-exclusionpath", "curl", "wget", "base64 -d",
            "chmod +x", "/dev/tcp/", "crontab", "authorized_keys")
SELECT = ("timestamp", "ComputerName", "UserName", "ImageFileName", "CommandLine", "ParentBaseFileName",
          "RawProcessId", "SHA256HashData")


def regex_text(literal: str) -> str:
    """A literal as CQL regex text between slashes."""
    out = []
    for char in literal:
        if char in ".^$*+?()[]{}|\\":
            out.append("\\" + char)
        elif char == "/":
            out.append("\\/")
        else:
            out.append(char)
    return "".join(out)


def alternation(rng: random.Random, items: tuple[str, ...], low: int, high: int) -> str:
    chosen = rng.sample(items, rng.randint(low, min(high, len(items))))
    return "(" + "|".join(regex_text(item) for item in chosen) + ")"


def scored_rule(rng: random.Random) -> str:
    tools = alternation(rng, TOOLS, 2, 8)
    lines = ["#event_simpleName=ProcessRollup2", f"| ImageFileName = /\\/{tools}$/i",
             f"| CommandLine = /{alternation(rng, SUBCOMMANDS, 3, 14)}/i"]
    signals = rng.sample(SIGNALS, rng.randint(2, 6))
    scores = []
    for flag, score, patterns in signals:
        pattern = alternation(rng, patterns, 1, 4)
        case = "" if rng.random() < 0.3 else "i"
        weight = rng.randint(1, 4)
        lines.append(f'| {flag} := if(CommandLine = /{pattern}/{case}, "YES", "NO")')
        lines.append(f"| {score} := if(CommandLine = /{pattern}/{case}, {weight}, 0)")
        scores.append(score)
    lines.append(f"| SuspicionScore := {' + '.join(scores)}")
    high = rng.randint(2, 4)
    lines.append(f'| Severity := if(SuspicionScore >= {high + rng.randint(2, 4)}, "CRITICAL", '
                 f'if(SuspicionScore >= {high}, "HIGH", "MEDIUM"))')
    fields = [*SELECT[:6], *(flag for flag, _, _ in signals), "SuspicionScore", "Severity"]
    lines.append(f"| select([{', '.join(fields)}])")
    lines.append("| sort(SuspicionScore, order=desc)")
    return "\n".join(lines) + "\n"


def _test(rng: random.Random) -> str:
    kind = rng.randrange(8)
    if kind == 0:
        return f"CommandLine = /{alternation(rng, KEYWORDS, 1, 4)}/{'i' if rng.random() < 0.7 else ''}"
    if kind == 1:
        return f"ImageFileName = /\\\\{regex_text(rng.choice(WINDOWS_BINARIES))}$/i"
    if kind == 2:
        return f"ParentBaseFileName = {rng.choice(PARENTS)}"
    if kind == 3:
        return f'CommandLine = "*{rng.choice(KEYWORDS)}*"'
    if kind == 4:
        values = ", ".join(f'"{v}"' for v in rng.sample(PARENTS, rng.randint(2, 5)))
        return f"in(ParentBaseFileName, values=[{values}])"
    if kind == 5:
        return f"not CommandLine = /{alternation(rng, KEYWORDS, 1, 2)}/i"
    if kind == 6:
        return f"RawProcessId > {rng.randint(1, 5000)}"
    return (f"ImageFileName = /{regex_text(rng.choice(WINDOWS_BINARIES))}/i and "
            f"(CommandLine = /{alternation(rng, KEYWORDS, 1, 3)}/i or ParentBaseFileName = {rng.choice(PARENTS)})")


def filter_rule(rng: random.Random) -> str:
    lines = ["#event_simpleName=ProcessRollup2", *(f"| {_test(rng)}" for _ in range(rng.randint(1, 4)))]
    if rng.random() < 0.7:
        fields = rng.sample(SELECT, rng.randint(3, len(SELECT)))
        lines.append(f"| select([{', '.join(fields)}])")
    return "\n".join(lines) + "\n"


def rules(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [scored_rule(rng) if rng.random() < 0.4 else filter_rule(rng) for _ in range(count)]
