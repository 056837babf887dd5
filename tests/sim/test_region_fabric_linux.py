"""Two emulated regions on the Linux dataplane, one underlay: a server at each on the same
VNI, each known at the other region as a remote port toward the VTEP of the host it is bound
to (read from the other region's ``/v2.0/agents``), and a ping between the servers' VM
namespaces crosses the underlay; deleting a remote port takes its FDB and ARP entries away
and the ping fails. Real ``cascade site-sim --dataplane linux --underlay`` processes, driven
through openstacksdk; skipped outside CI unless root (``require_netns``)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from tests.fabric.netns import namespaces, require_netns, run_in
from tests.sim.linux_regions import (
    eventually,
    new_namespaces_removed,
    place,
    regions,
    shadow,
    underlay_bridge,
)

__all__ = ["new_namespaces_removed", "underlay_bridge"]  # tests.network.linux_sites uses them


def test_servers_at_regions_ping_over_the_underlay(tmp_path: Path) -> None:
    require_netns()
    with ExitStack() as stack:
        sites = regions(stack, tmp_path, "fab-a", "fab-b")
        a = place(sites[0], ("10.42.0.10", "10.42.0.99"))
        b = place(sites[1], ("10.42.0.100", "10.42.0.199"))
        assert a.vtep != b.vtep
        remote_b = shadow(a, b)
        shadow(b, a)

        eventually(lambda: a.reaches(b), "a ping from a's server to b's")
        eventually(lambda: b.reaches(a), "a ping from b's server to a's")
        host_a = a.host_namespace()
        assert b.port.mac_address in run_in(host_a, "bridge", "fdb", "show")
        assert b.ip in run_in(host_a, "ip", "neigh", "show")

        a.conn.network.delete_port(remote_b)
        mac, address = b.port.mac_address, b.ip
        eventually(
            lambda: (
                mac not in run_in(host_a, "bridge", "fdb", "show")
                and address not in run_in(host_a, "ip", "neigh", "show")
            ),
            "b's FDB and ARP entries to leave a's host",
        )
        assert not a.reaches(b)
        made = {a.host_namespace(), b.host_namespace(), a.vm_namespace(), b.vm_namespace()}
        for site in sites:
            site.stop()
        assert not made & namespaces()  # a region that stops removes its hosts' namespaces
