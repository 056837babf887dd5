"""Every resource package's worker side, imported by each worker so that DBOS knows their
workflows and the engine their handlers, actions and convergence checkers."""

from cascade.compute import server_steps
from cascade.engine import probe
from cascade.network import port_steps, router_steps, segment_steps, service_ip_steps
from cascade.protection import (
    backup_steps,
    checkpoint_steps,
    freeze_watchdog,
    plan_steps,
    plans,
    restore_steps,
    schedule_tick,
)
from cascade.replication import audit, keypair_steps, policy_steps

WORKLOADS = (
    server_steps,
    keypair_steps,
    policy_steps,
    audit,
    segment_steps,
    port_steps,
    service_ip_steps,
    router_steps,
    plans,
    plan_steps,
    checkpoint_steps,
    backup_steps,
    restore_steps,
    schedule_tick,
    freeze_watchdog,
    probe,
)
