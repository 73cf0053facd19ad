"""Fleet inventories: which Pis exist, how to reach them, and which groups they belong to.

Three formats are read (chosen by the file's content, not its name):

- face-edge's own YAML (``hosts:`` at the top; example in the README)::

      defaults: {user: pi, identity: ~/.ssh/face-edge}
      hosts:
        door-1: {address: 192.168.1.21}
        door-2: {address: 192.168.1.22, port: 2222}
      groups:
        doors: [door-1, door-2]

- an Ansible inventory in YAML (``all:`` / group names with ``hosts``, ``children``, ``vars``);
- an Ansible inventory in INI (``[group]``, ``[group:vars]``, ``[group:children]``, host
  patterns such as ``door-[01:20].local``).

Ansible connection variables are understood (``ansible_host``, ``ansible_port``,
``ansible_user``, ``ansible_ssh_private_key_file``, ``-o`` options in ``ansible_ssh_common_args``
/ ``ansible_ssh_extra_args``) plus ``face_edge_command``, ``face_edge_config`` and
``face_edge_staging``; other Ansible variables are ignored. Group variables apply from the
outermost group inward (``all`` first, a child group after its parent, siblings in name order),
host variables last, as Ansible does. Reading needs PyYAML only, never Ansible.
"""
from __future__ import annotations

import ast
import os
import re
import shlex
import string
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

from .errors import FaceEdgeError
from .push import DEFAULT_STAGING, SshTarget

FORMATS = ("face-edge", "ansible-yaml", "ansible-ini")
HOST_KEYS = ("address", "user", "port", "identity", "ssh_options", "command", "config", "staging")
ANSIBLE_VARS = {
    "ansible_host": "address", "ansible_ssh_host": "address",
    "ansible_port": "port", "ansible_ssh_port": "port",
    "ansible_user": "user", "ansible_ssh_user": "user",
    "ansible_ssh_private_key_file": "identity", "ansible_private_key_file": "identity",
    "face_edge_command": "command", "face_edge_config": "config", "face_edge_staging": "staging",
}
SSH_ARG_VARS = ("ansible_ssh_common_args", "ansible_ssh_extra_args")


class InventoryError(FaceEdgeError):
    """An inventory file is missing, malformed, or names an unknown host, group or key."""

    exit_code = 2


@dataclass(frozen=True)
class Host:
    """One Pi of the fleet: its inventory name, how to reach it over ssh, where face-edge lives on it."""

    name: str
    address: str
    user: Optional[str] = None
    port: Optional[int] = None
    identity: Optional[str] = None
    ssh_options: tuple[str, ...] = ()
    command: str = "face-edge"
    config: Optional[str] = None
    staging: str = DEFAULT_STAGING
    groups: tuple[str, ...] = ()

    def target(self, connect_timeout: int = 10, extra_options: Iterable[str] = ()) -> SshTarget:
        """Return the SshTarget that reaches this host (user@address, port, key, -o options)."""
        login = f"{self.user}@{self.address}" if self.user else self.address
        return SshTarget(login, port=self.port, identity=self.identity,
                         options=tuple(self.ssh_options) + tuple(extra_options), connect_timeout=connect_timeout)

    def where(self) -> str:
        """Return address[:port] for tables."""
        return f"{self.address}:{self.port}" if self.port else self.address


@dataclass
class Inventory:
    """The hosts of an inventory file in file order, and every group's member host names."""

    path: Path
    format: str
    hosts: dict[str, Host]
    groups: dict[str, list[str]] = field(default_factory=dict)

    def select(self, pattern: Optional[str] = None) -> list[Host]:
        """Return the hosts named by ``pattern`` (comma-separated groups or host names; None = all), in file order.

        InventoryError lists the known groups when a name is neither a group nor a host.
        """
        if not pattern or pattern.strip() in ("all", "*"):
            return list(self.hosts.values())
        wanted: set[str] = set()
        for name in (p.strip() for p in pattern.split(",") if p.strip()):
            if name in self.groups:
                wanted.update(self.groups[name])
            elif name in self.hosts:
                wanted.add(name)
            else:
                known = ", ".join(sorted(g for g in self.groups if g not in ("all", "ungrouped"))) or "none"
                raise InventoryError(f"{self.path}: no group or host named {name!r} (groups: {known})")
        chosen = [h for h in self.hosts.values() if h.name in wanted]
        if not chosen:
            raise InventoryError(f"{self.path}: group {pattern!r} has no hosts")
        return chosen


def load_inventory(path: str | os.PathLike[str]) -> Inventory:
    """Return the Inventory in ``path`` (face-edge YAML, Ansible YAML or Ansible INI, told apart by content).

    InventoryError (exit code 2) names the file, and the line or key, of any fault.
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError(f"{path}: inventory file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{path}: cannot read the inventory ({exc})") from None
    data: Any = None
    if not _looks_like_ini(text):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InventoryError(f"{path}: neither an INI inventory nor valid YAML "
                                 f"({' '.join(str(exc).split())[:160]})") from None
    if isinstance(data, dict):
        if "hosts" in data and isinstance(data.get("hosts"), dict) and not _is_ansible_group(data):
            inv = _read_face_edge_yaml(path, data)
        else:
            inv = _read_ansible_yaml(path, data)
    else:
        inv = _read_ansible_ini(path, text)
    if not inv.hosts:
        raise InventoryError(f"{path}: no hosts in the inventory")
    return inv


def _looks_like_ini(text: str) -> bool:
    """Return True when the first meaningful line is an INI section header or a ``host key=value`` line."""
    for line in text.splitlines():
        stripped = line.split("#")[0].strip()
        if not stripped or stripped.startswith((";", "---")):
            continue
        if _SECTION.match(stripped):
            return True
        return "=" in stripped and ":" not in stripped.split("=")[0]
    return False


def _is_ansible_group(data: dict[str, Any]) -> bool:
    # A top-level mapping whose values are groups ({hosts|children|vars}) is an Ansible inventory,
    # even when one group happens to be called "hosts".
    return all(v is None or (isinstance(v, dict) and set(v) <= {"hosts", "children", "vars"})
               for v in data.values())


# --- face-edge YAML --------------------------------------------------------------------------------
def _read_face_edge_yaml(path: Path, data: dict[str, Any]) -> Inventory:
    unknown = set(data) - {"defaults", "hosts", "groups"}
    if unknown:
        raise InventoryError(f"{path}: unknown top-level key {sorted(unknown)[0]!r} (known: defaults, hosts, groups)")
    defaults = _host_fields(path, "defaults", data.get("defaults") or {})
    hosts: dict[str, Host] = {}
    for name, values in (data.get("hosts") or {}).items():
        name = _host_name(path, name)
        fields = {**defaults, **_host_fields(path, f"hosts.{name}", values or {})}
        hosts[name] = _make_host(path, name, fields)
    raw_groups = data.get("groups") or {}
    if not isinstance(raw_groups, dict):
        raise InventoryError(f"{path}: groups must map a group name to a list of hosts or groups")
    members: dict[str, list[str]] = {}
    for group, items in raw_groups.items():
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise InventoryError(f"{path}: groups.{group} must be a list of host or group names")
        members[str(group)] = items
    groups = {g: _expand_group(path, g, members, hosts, ()) for g in members}
    groups["all"] = list(hosts)
    hosts = {n: replace(h, groups=tuple(g for g in groups if n in groups[g] and g != "all")) for n, h in hosts.items()}
    return Inventory(path, "face-edge", hosts, groups)


def _expand_group(path: Path, group: str, members: dict[str, list[str]], hosts: dict[str, Host],
                  seen: tuple[str, ...]) -> list[str]:
    if group in seen:
        raise InventoryError(f"{path}: group {group!r} contains itself ({' -> '.join(seen + (group,))})")
    out: list[str] = []
    for item in members[group]:
        if item in hosts:
            out.append(item)
        elif item in members:
            out += _expand_group(path, item, members, hosts, seen + (group,))
        else:
            raise InventoryError(f"{path}: groups.{group} names {item!r}, which is neither a host nor a group")
    return list(dict.fromkeys(out))


def _host_fields(path: Path, where: str, values: Any) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise InventoryError(f"{path}: {where} must be a mapping of {', '.join(HOST_KEYS)}")
    unknown = set(values) - set(HOST_KEYS)
    if unknown:
        raise InventoryError(f"{path}: {where}.{sorted(unknown)[0]}: unknown key (known: {', '.join(HOST_KEYS)})")
    return dict(values)


# --- Ansible YAML ----------------------------------------------------------------------------------
@dataclass
class _Group:
    name: str
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)   # host -> its vars given in this group
    children: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)


def _read_ansible_yaml(path: Path, data: Any) -> Inventory:
    if not isinstance(data, dict):
        raise InventoryError(f"{path}: expected an inventory (face-edge YAML with 'hosts:', or an Ansible "
                             "inventory in YAML or INI form)")
    groups: dict[str, _Group] = {}

    def visit(name: str, body: Any, where: str) -> None:
        group = groups.setdefault(name, _Group(name))
        if body is None:
            return
        if not isinstance(body, dict):
            raise InventoryError(f"{path}: {where} must be a mapping with hosts, children or vars")
        unknown = set(body) - {"hosts", "children", "vars"}
        if unknown:
            raise InventoryError(f"{path}: {where}.{sorted(unknown)[0]}: unknown key (Ansible groups have "
                                 "hosts, children, vars)")
        for host, hvars in (body.get("hosts") or {}).items():
            if hvars is not None and not isinstance(hvars, dict):
                raise InventoryError(f"{path}: {where}.hosts.{host} must be a mapping of variables")
            names, port = _expand_pattern(path, str(host), where)
            for expanded in names:
                group.hosts.setdefault(expanded, {}).update(({"ansible_port": port} if port else {}) | (hvars or {}))
        for var_name, value in (body.get("vars") or {}).items():
            group.vars[str(var_name)] = value
        for child, child_body in (body.get("children") or {}).items():
            if str(child) not in group.children:
                group.children.append(str(child))
            visit(str(child), child_body, f"{where}.children.{child}")

    for name, body in data.items():
        visit(str(name), body, str(name))
    return _resolve_ansible(path, "ansible-yaml", groups)


# --- Ansible INI -----------------------------------------------------------------------------------
_SECTION = re.compile(r"^\[([^\]:]+)(?::(vars|children))?\]$")


def _read_ansible_ini(path: Path, text: str) -> Inventory:
    groups: dict[str, _Group] = {"ungrouped": _Group("ungrouped")}
    section, kind = "ungrouped", "hosts"
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        match = _SECTION.match(line)
        if match:
            section, kind = match.group(1).strip(), match.group(2) or "hosts"
            groups.setdefault(section, _Group(section))
            continue
        if line.startswith("["):
            raise InventoryError(f"{path}:{lineno}: malformed section header {line!r}")
        where = f"{path}:{lineno}"
        if kind == "vars":
            if "=" not in line:
                raise InventoryError(f"{where}: expected key=value in [{section}:vars]")
            key, value = line.split("=", 1)
            groups[section].vars[key.strip()] = _ini_value(value.strip())
        elif kind == "children":
            child = line.split()[0]
            groups.setdefault(child, _Group(child))
            if child not in groups[section].children:
                groups[section].children.append(child)
        else:
            try:
                parts = shlex.split(line, comments=True)
            except ValueError as exc:
                raise InventoryError(f"{where}: {exc}") from None
            if not parts:
                continue
            names, port = _expand_pattern(path, parts[0], where)
            hvars: dict[str, Any] = {"ansible_port": port} if port else {}
            for token in parts[1:]:
                if "=" not in token:
                    raise InventoryError(f"{where}: expected key=value after the host name, got {token!r}")
                key, value = token.split("=", 1)
                hvars[key] = _ini_value(value)
            for host in names:
                groups[section].hosts.setdefault(host, {}).update(hvars)
    return _resolve_ansible(path, "ansible-ini", groups)


def _ini_value(text: str) -> Any:
    """Return an INI value as Ansible reads it: a Python literal when it parses as one, else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


# --- shared Ansible resolution ---------------------------------------------------------------------
def _resolve_ansible(path: Path, fmt: str, groups: dict[str, _Group]) -> Inventory:
    groups.setdefault("all", _Group("all"))
    parents: dict[str, set[str]] = {g: set() for g in groups}
    for g in groups.values():
        for child in g.children:
            groups.setdefault(child, _Group(child))
            parents.setdefault(child, set()).add(g.name)
    for name in groups:
        if name != "all":
            parents.setdefault(name, set()).add("all")
    depth: dict[str, int] = {}

    def depth_of(name: str, seen: tuple[str, ...] = ()) -> int:
        if name in seen:
            raise InventoryError(f"{path}: group {name!r} is its own child ({' -> '.join(seen + (name,))})")
        if name not in depth:
            depth[name] = 0 if name == "all" else 1 + max(depth_of(p, seen + (name,)) for p in parents[name])
        return depth[name]

    for name in groups:
        depth_of(name)

    def members(name: str, seen: tuple[str, ...] = ()) -> list[str]:
        out = list(groups[name].hosts)
        for child in groups[name].children:
            out += members(child, seen + (name,))
        return list(dict.fromkeys(out))

    order: list[str] = []
    for g in groups.values():   # file order: hosts as they first appear
        order += [h for h in g.hosts if h not in order]
    membership = {g: members(g) for g in groups}
    membership["all"] = order
    hosts: dict[str, Host] = {}
    for host in order:
        mine = sorted((g for g in groups if host in membership[g]), key=lambda g: (depth[g], g))
        merged: dict[str, Any] = {}
        for g in mine:
            merged.update(groups[g].vars)
        for g in mine:
            merged.update(groups[g].hosts.get(host, {}))
        hosts[host] = _make_host(path, host, _from_ansible(path, host, merged),
                                 tuple(g for g in mine if g not in ("all", "ungrouped")))
    return Inventory(path, fmt, hosts, membership)


def _from_ansible(path: Path, host: str, variables: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for var, key in ANSIBLE_VARS.items():
        if var in variables and variables[var] not in (None, ""):
            fields[key] = variables[var]
    options: list[str] = []
    for var in SSH_ARG_VARS:
        if variables.get(var):
            options += _ssh_o_options(path, host, var, str(variables[var]))
    if options:
        fields["ssh_options"] = options
    return fields


def _ssh_o_options(path: Path, host: str, var: str, text: str) -> list[str]:
    tokens = shlex.split(text)
    out, i = [], 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "-o" and i + 1 < len(tokens):
            out.append(tokens[i + 1])
            i += 2
        elif tok.startswith("-o") and len(tok) > 2:
            out.append(tok[2:])
            i += 1
        else:
            raise InventoryError(f"{path}: {host}: {var}: only -o Option=value arguments are understood, got {tok!r}")
    return out


# --- hosts -----------------------------------------------------------------------------------------
_RANGE = re.compile(r"\[([^\]]+)\]")


def _expand_pattern(path: Path, pattern: str, where: str) -> tuple[list[str], Optional[int]]:
    """Return (host names, port) of an Ansible host pattern: ``door-[01:03]:2222`` -> door-01..03, 2222.

    Ranges: ``[01:03]`` (zero-padded as written), ``[a:c]``, ``[0:10:5]`` (with a step).
    """
    port = None
    tail = re.match(r"^(.*[^:]):(\d+)$", pattern)
    if tail and "]" not in pattern[tail.end(1):]:
        pattern, port = tail.group(1), int(tail.group(2))
    return _expand_ranges(pattern, where), port


def _expand_ranges(pattern: str, where: str) -> list[str]:
    match = _RANGE.search(pattern)
    if not match:
        return [pattern]
    body = match.group(1).split(":")
    if len(body) not in (2, 3):
        raise InventoryError(f"{where}: host range {match.group(0)!r} must be [start:end] or [start:end:step]")
    start, end = body[0], body[1]
    step = int(body[2]) if len(body) == 3 and body[2] else 1
    head, tail = pattern[:match.start()], pattern[match.end():]
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") else 0
        values = [str(v).zfill(width) for v in range(int(start), int(end) + 1, step)]
    elif len(start) == 1 and len(end) == 1 and start in string.ascii_letters and end in string.ascii_letters:
        values = [chr(c) for c in range(ord(start), ord(end) + 1, step)]
    else:
        raise InventoryError(f"{where}: host range {match.group(0)!r}: give numbers or single letters")
    if not values:
        raise InventoryError(f"{where}: host range {match.group(0)!r} is empty")
    return [h for v in values for h in _expand_ranges(head + v + tail, where)]


_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _host_name(path: Path, name: Any) -> str:
    text = str(name)
    if not _NAME.match(text):
        raise InventoryError(f"{path}: host name {text!r} may only use letters, digits and . _ -")
    return text


def _make_host(path: Path, name: str, fields: dict[str, Any], groups: tuple[str, ...] = ()) -> Host:
    address, port = str(fields.get("address") or name), fields.get("port")
    if port is not None:
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise InventoryError(f"{path}: {name}: port must be a number, got {port!r}") from None
        if not 0 < port < 65536:
            raise InventoryError(f"{path}: {name}: port {port} is out of range")
    options = fields.get("ssh_options") or ()
    if isinstance(options, str):
        options = (options,)
    if not isinstance(options, (list, tuple)) or not all(isinstance(o, str) for o in options):
        raise InventoryError(f"{path}: {name}: ssh_options must be a list of Option=value strings")
    identity = fields.get("identity")
    return Host(name=name, address=address, user=str(fields["user"]) if fields.get("user") else None, port=port,
                identity=str(Path(str(identity)).expanduser()) if identity else None, ssh_options=tuple(options),
                command=str(fields.get("command") or "face-edge"),
                config=str(fields["config"]) if fields.get("config") else None,
                staging=str(fields.get("staging") or DEFAULT_STAGING), groups=groups)
