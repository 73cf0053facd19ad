"""edge.inventory (face-edge YAML, Ansible INI and YAML) and the rollout's plan and health rules.

Where Ansible is installed (ansible-core, in the dev extras) its own ``ansible-inventory --list``
reads the same files, and our hosts, groups and connection variables must agree with it.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from edge.fleet import BundleRef, health_problem, plan_stages
from edge.inventory import InventoryError, load_inventory

INI = """# the shop
spare.local

[doors]
door-[01:03].local ansible_user=pi
door-04.local:2222 ansible_user=admin face_edge_config=/etc/face-edge/door.yaml

[doors:vars]
ansible_ssh_private_key_file=/keys/face-edge
ansible_ssh_common_args='-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=/tmp/kh'
face_edge_command=/opt/face-edge/venv/bin/face-edge

[hall]
hall-cam ansible_host=10.0.0.9 ansible_port=2200

[site:children]
doors
hall

[site:vars]
ansible_user=site
face_edge_staging=/srv/staging
"""

ANSIBLE_YAML = """
all:
  vars:
    ansible_user: pi
  hosts:
    spare.local:
  children:
    doors:
      vars:
        face_edge_command: /opt/face-edge/venv/bin/face-edge
      hosts:
        door-[01:02].local:
        door-03.local:2222:
          ansible_user: admin
    site:
      vars: {ansible_user: site, face_edge_staging: /srv/staging}
      children:
        doors:
        hall:
          hosts:
            hall-cam: {ansible_host: 10.0.0.9, ansible_port: 2200}
"""

FACE_EDGE_YAML = """
defaults: {user: pi, identity: /keys/face-edge, command: /opt/face-edge/venv/bin/face-edge}
hosts:
  door-1: {address: 192.168.1.21}
  door-2: {address: 192.168.1.22, port: 2222, ssh_options: [StrictHostKeyChecking=accept-new]}
  hall: {address: hall.local, user: admin, config: /etc/face-edge/hall.yaml}
groups:
  doors: [door-1, door-2]
  site: [doors, hall]
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_ansible_ini_inventory(tmp_path: Path) -> None:
    inv = load_inventory(_write(tmp_path, "hosts", INI))
    assert inv.format == "ansible-ini"
    assert list(inv.hosts) == ["spare.local", "door-01.local", "door-02.local", "door-03.local", "door-04.local",
                               "hall-cam"]
    d1, d4, hall = inv.hosts["door-01.local"], inv.hosts["door-04.local"], inv.hosts["hall-cam"]
    assert (d1.address, d1.user, d1.port, d1.identity) == ("door-01.local", "pi", None, "/keys/face-edge")
    assert d1.ssh_options == ("StrictHostKeyChecking=accept-new", "UserKnownHostsFile=/tmp/kh")
    assert (d1.command, d1.staging) == ("/opt/face-edge/venv/bin/face-edge", "/srv/staging")
    assert (d4.user, d4.port, d4.config) == ("admin", 2222, "/etc/face-edge/door.yaml")
    assert (hall.address, hall.port, hall.user, hall.command) == ("10.0.0.9", 2200, "site", "face-edge")
    assert [h.name for h in inv.select("hall,door-02.local")] == ["door-02.local", "hall-cam"]
    assert len(inv.select("site")) == 5 and len(inv.select(None)) == 6
    target = d4.target(connect_timeout=4)
    assert target.host == "admin@door-04.local" and target.port == 2222
    assert "ConnectTimeout=4" in target.ssh_command() and "UserKnownHostsFile=/tmp/kh" in target.ssh_command()


def test_ansible_yaml_inventory_group_precedence(tmp_path: Path) -> None:
    inv = load_inventory(_write(tmp_path, "hosts.yml", ANSIBLE_YAML))
    assert inv.format == "ansible-yaml"
    # all < site < doors (child after parent) < host: site's user wins over all's, the host's over both
    assert inv.hosts["spare.local"].user == "pi"
    assert inv.hosts["door-01.local"].user == "site"
    assert (inv.hosts["door-03.local"].user, inv.hosts["door-03.local"].port) == ("admin", 2222)
    assert inv.hosts["door-02.local"].command == "/opt/face-edge/venv/bin/face-edge"
    assert [h.name for h in inv.select("doors")] == ["door-01.local", "door-02.local", "door-03.local"]


def test_face_edge_yaml_inventory_and_errors_name_the_key(tmp_path: Path) -> None:
    inv = load_inventory(_write(tmp_path, "fleet.yaml", FACE_EDGE_YAML))
    assert inv.format == "face-edge"
    assert [h.name for h in inv.select("site")] == ["door-1", "door-2", "hall"]
    assert inv.hosts["door-2"].ssh_options == ("StrictHostKeyChecking=accept-new",)
    assert (inv.hosts["hall"].user, inv.hosts["hall"].config, inv.hosts["hall"].identity) == \
        ("admin", "/etc/face-edge/hall.yaml", "/keys/face-edge")
    assert inv.hosts["door-1"].groups == ("doors", "site")
    bad = {
        "hosts:\n  door-1: {adress: 10.0.0.1}\n": "hosts.door-1.adress: unknown key",
        "hosts:\n  door-1: {}\ngroups:\n  doors: [door-9]\n": "neither a host nor a group",
        "hosts:\n  door-1: {port: ssh}\n": "port must be a number",
        "hosts:\n  door-1: {}\ngroups:\n  a: [b]\n  b: [a]\n": "contains itself",
        "[doors]\ndoor-1 user\n": "expected key=value",
        "hosts: {}\n": "no hosts",
    }
    for text, needle in bad.items():
        with pytest.raises(InventoryError, match=needle):
            load_inventory(_write(tmp_path, "bad.yaml", text))
    with pytest.raises(InventoryError, match="no group or host named 'lab'.*groups: doors, site"):
        inv.select("lab")
    with pytest.raises(InventoryError, match="not found"):
        load_inventory(tmp_path / "missing.yaml")


@pytest.mark.parametrize("name,text", [("hosts.ini", INI), ("hosts.yml", ANSIBLE_YAML)])
def test_same_hosts_groups_and_connection_as_ansible_inventory(tmp_path: Path, name: str, text: str) -> None:
    if shutil.which("ansible-inventory") is None:
        pytest.skip("ansible-inventory is not installed (pip install ansible-core)")
    path = _write(tmp_path, name, text)
    done = subprocess.run(["ansible-inventory", "-i", str(path), "--list"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout)
    ours = load_inventory(path)
    hostvars = theirs["_meta"]["hostvars"]
    assert set(hostvars) | set(theirs.get("ungrouped", {}).get("hosts", [])) == set(ours.hosts)
    for host, v in hostvars.items():
        mine = ours.hosts[host]
        assert mine.user == v.get("ansible_user"), host
        assert mine.port == v.get("ansible_port"), host
        assert mine.address == v.get("ansible_host", host), host
        assert mine.command == v.get("face_edge_command", "face-edge"), host
        assert mine.staging == v.get("face_edge_staging", "/var/lib/face-edge/staging"), host

    def members(group: str) -> set[str]:
        body = theirs.get(group, {})
        out = set(body.get("hosts", []))
        for child in body.get("children", []):
            out |= members(child)
        return out

    for group in ("doors", "site", "hall"):
        assert set(h.name for h in ours.select(group)) == members(group), group


def test_plan_canary_then_batches(tmp_path: Path) -> None:
    hosts = load_inventory(_write(tmp_path, "hosts", INI)).select("doors")
    stages = plan_stages(hosts, batch=2, canary="door-03.local")
    assert [(label, [h.name for h in members]) for label, members in stages] == [
        ("canary", ["door-03.local"]), ("batch 1", ["door-01.local", "door-02.local"]),
        ("batch 2", ["door-04.local"])]
    assert [len(m) for _, m in plan_stages(hosts, batch=1, canary=None)] == [1, 1, 1, 1]
    with pytest.raises(Exception, match="--canary hall-cam: not among the selected hosts"):
        plan_stages(hosts, batch=1, canary="hall-cam")


def test_health_rule() -> None:
    bundle = BundleRef(Path("b"), "attributes", "2", "abc")
    healthy = {"configured": ["attributes"], "bundles": {"attributes": {"version": "2"}},
               "service": {"state": "running", "ready": True, "models": {"attributes": "2"},
                           "last_reload": {"ok": True}}}
    assert health_problem(healthy, [bundle]) is None
    stale = json.loads(json.dumps(healthy))
    stale["service"]["models"]["attributes"] = "1"
    assert "runs attributes '1', not 2" in health_problem(stale, [bundle])
    not_run = json.loads(json.dumps(stale))
    not_run["configured"] = []     # a bundle this Pi's config does not run: on disk is enough
    assert health_problem(not_run, [bundle]) is None
    failed = json.loads(json.dumps(healthy))
    failed["service"]["last_reload"] = {"ok": False, "errors": ["bad signature"]}
    assert "last reload failed: bad signature" in health_problem(failed, [bundle])
    assert health_problem({"service": {"state": "not running"}}, [bundle]) == "service not running"
