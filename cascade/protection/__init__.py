"""Protection of a VNF at one site for another (issue 16, geo-redundancy): plans, their
checkpoints, backups and restores, by one of three strategies. ``plans`` is the API side and
the plan's state machine; ``plan_steps`` finds the members' volumes and cleans up at the
site; ``barrier`` is the freeze barrier every strategy holds (freeze in order, thaw in
reverse, always); ``checkpoint_steps`` the checkpoint (one group snapshot as the consistency
point), then ``backup_steps`` (strategy 1, group_snapshot: backups into a chunk store) or
``replica_steps`` (strategy 2, storage_replication: the replicas the site's storage shipped,
managed by reference on restore); ``image_steps`` is strategy 3 (image_snapshot: one server's
image copied to the target); ``restores``/``restore_steps`` bring a checkpoint back at a
target; ``site_groups`` the volume group calls at a site. May import ``cascade.network``
(visible sites), ``cascade.engine``, ``cascade.sites``, ``cascade.db`` and
``cascade.errors``."""
