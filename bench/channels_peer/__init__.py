"""The comparison peer: the same workloads on a minimal Django Channels 4 app (daphne +
channels_redis), behind the same kind of nginx front as the ws4redis stack."""
