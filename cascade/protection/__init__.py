"""Protection of a VNF at one site for another (issue 16, geo-redundancy): plans, their
checkpoints, and (later) backups and restores. ``plans`` is the API side and the plan's
state machine; ``plan_steps`` finds the members' volumes and cleans up at the site;
``checkpoint_steps`` is strategy 1's barrier (freeze in order, one group snapshot, thaw in
reverse, always); ``site_groups`` the volume group calls at a site. May import
``cascade.network`` (visible sites), ``cascade.engine``, ``cascade.sites``, ``cascade.db``
and ``cascade.errors``."""
